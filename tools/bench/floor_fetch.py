"""The benchmark's floor: one IMAPS connection, SASL XOAUTH2, ``UID FETCH BODY.PEEK[]`` of every
mail in INBOX in batches, bytes counted and discarded (no parsing, no storing). Run as a child
process so that its start-up, wall time and memory compare like for like with ``wicbox run``::

    python -m tools.bench.floor_fetch --host H --port P --ca CA.pem --user U --token-file F

Prints one JSON line: mails, bytes and the seconds of the fetch loop alone.

``--trace-off`` sets imaplib's debug level back to 0 as ``wicbox run`` does: imapclient sets it
to 5 and sends imaplib's trace to a logger at DEBUG, and imaplib formats each trace message (the
``repr`` of every literal it reads, the text of every FETCH answer) before the logger drops it.
Without the flag the floor is imapclient as it comes, the floor of the earlier figures.
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from imapclient import IMAPClient

BATCH = 200


def batches(uids: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(uids), size):
        yield uids[start : start + size]


def fetch_all(client: IMAPClient, batch: int) -> tuple[int, int]:
    """Fetch every mail of INBOX; (mails, bytes)."""
    client.select_folder("INBOX", readonly=True)
    uids = sorted(client.search("ALL"))
    mails = size = 0
    for chunk in batches(uids, batch):
        for data in client.fetch(chunk, ["BODY.PEEK[]"]).values():
            mails += 1
            size += len(data[b"BODY[]"])
    return mails, size


def main(argv: list[str] | None = None) -> int:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--host", required=True)
    arguments.add_argument("--port", type=int, required=True)
    arguments.add_argument("--ca", required=True, help="CA certificate (PEM) of the IMAP server")
    arguments.add_argument("--user", required=True)
    arguments.add_argument("--token-file", required=True, type=Path)
    arguments.add_argument("--batch", type=int, default=BATCH)
    arguments.add_argument("--trace-off", action="store_true", help="imaplib's debug level 0, as wicbox run")
    options = arguments.parse_args(argv)
    token = options.token_file.read_text(encoding="ascii").strip()
    context = ssl.create_default_context(cafile=options.ca)
    with IMAPClient(options.host, port=options.port, ssl=True, ssl_context=context) as client:
        if options.trace_off:
            client._imap.debug = 0
        client.oauth2_login(options.user, token)
        started = time.perf_counter()
        mails, size = fetch_all(client, options.batch)
        seconds = time.perf_counter() - started
    print(json.dumps({"mails": mails, "bytes": size, "fetch_seconds": round(seconds, 4)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
