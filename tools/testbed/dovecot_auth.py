"""Sign-in checks for the test bed's Dovecot, with Exchange Online's rules.

Why not Dovecot's ``oauth2`` passdb: it compares one claim of the token with the login user, which
cannot express "an application token may open every mailbox its service principal was granted".
Why not ``checkpassword``: Dovecot 2.3 refuses user+password over 512 bytes, and tokens are
larger.

So the passdb is ``dict`` over Dovecot's dict proxy protocol, answered by
:class:`LoginCheckServer` (a thread of the test process listening on a unix socket). The dict key
carries the SASL mechanism, the user and the secret (``%{mech}``, ``%u``, ``%w``; Dovecot's
XOAUTH2 and OAUTHBEARER mechanisms hand over the token as the password), and the answer is a
passdb record: ``nopassword`` when the rules accept the sign-in, plus ``nologin`` with Exchange's
text as ``reason`` when they refuse it. A refusal therefore reaches the client as
``NO [CONTACTADMIN] AUTHENTICATE failed.`` (``LOGIN failed.`` for passwords) at once, without
Dovecot's SASL error round trip, much like Exchange's ``NO AUTHENTICATE failed.``.
"""

from __future__ import annotations

import json
import socketserver
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tools.testbed.tokens import (
    MailAccounts,
    MailProtocol,
    TokenRules,
    Verdict,
    check_password,
    check_token,
)

TOKEN_MECHANISMS = frozenset({"XOAUTH2", "OAUTHBEARER"})
AUTHENTICATE_FAILED = "AUTHENTICATE failed."
LOGIN_FAILED = "LOGIN failed."
DICT_NAME = "passdb"
KEY_PREFIX = "shared/passdb/"
# %{mech}/%u/%w: the secret comes last, so it may contain any character.
KEY_TEMPLATE = "passdb/%{mech}/%u/%w"

_TAB_UNESCAPES = {"0": "\0", "1": "\x01", "t": "\t", "r": "\r", "n": "\n"}


@dataclass(frozen=True)
class SignIn:
    """One sign-in as the login check saw it (for assertions: why was it refused?)."""

    mechanism: str
    user: str
    verdict: Verdict


@dataclass
class SignInLog:
    """Sign-ins seen so far, newest last (thread-safe)."""

    _entries: list[SignIn] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, entry: SignIn) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[SignIn]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def judge(mechanism: str, user: str, secret: str, rules: TokenRules, accounts: MailAccounts) -> Verdict:
    """Exchange's IMAP rules: tokens for XOAUTH2/OAUTHBEARER, the Basic password otherwise."""
    if mechanism.upper() in TOKEN_MECHANISMS:
        return check_token(secret, user, MailProtocol.IMAP, rules, accounts)
    return check_password(user, secret, accounts)


def passdb_record(mechanism: str, verdict: Verdict) -> dict[str, str]:
    """The passdb fields Dovecot gets for a verdict."""
    if verdict.accepted:
        return {"nopassword": "y"}
    reason = AUTHENTICATE_FAILED if mechanism.upper() in TOKEN_MECHANISMS else LOGIN_FAILED
    return {"nopassword": "y", "nologin": "y", "reason": reason}


def tab_unescape(text: str) -> str:
    """Undo Dovecot's str_tabescape (\\x01 followed by a code letter)."""
    out: list[str] = []
    chars = iter(text)
    for char in chars:
        out.append(_TAB_UNESCAPES.get(next(chars, ""), "") if char == "\x01" else char)
    return "".join(out)


def parse_lookup_key(key: str) -> tuple[str, str, str] | None:
    """(mechanism, user, secret) from ``shared/passdb/<mech>/<user>/<secret>``."""
    if not key.startswith(KEY_PREFIX):
        return None
    parts = key[len(KEY_PREFIX) :].split("/", 2)
    if len(parts) != 3:
        return None
    mechanism, user, secret = parts
    return mechanism, user, secret


class _DictProxyHandler(socketserver.StreamRequestHandler):
    """Dovecot's dict proxy protocol: a handshake line, then ``L<key>[\\t<user>]`` lookups."""

    server: _DictProxyServer

    def handle(self) -> None:
        for raw_line in self.rfile:
            line = raw_line.decode("utf-8", "replace").rstrip("\n")
            if line.startswith("L"):
                self.wfile.write(self._lookup(line[1:]).encode())
                self.wfile.flush()

    def _lookup(self, arguments: str) -> str:
        key = tab_unescape(arguments.split("\t", 1)[0])
        request = parse_lookup_key(key)
        if request is None:
            return "N\n"
        mechanism, user, secret = request
        verdict = self.server.judge(mechanism, user, secret)
        self.server.sign_ins.add(SignIn(mechanism.upper(), user, verdict))
        return "O" + json.dumps(passdb_record(mechanism, verdict)) + "\n"


class _DictProxyServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path, rules: TokenRules, accounts: MailAccounts) -> None:
        super().__init__(str(path), _DictProxyHandler)
        self.rules = rules
        self.accounts = accounts
        self.sign_ins = SignInLog()

    def judge(self, mechanism: str, user: str, secret: str) -> Verdict:
        return judge(mechanism, user, secret, self.rules, self.accounts)


class LoginCheckServer:
    """The dict proxy service Dovecot's passdb asks; runs in a daemon thread."""

    def __init__(self, socket_path: Path, rules: TokenRules, accounts: MailAccounts) -> None:
        self.socket_path = socket_path
        self._server = _DictProxyServer(socket_path, rules, accounts)
        socket_path.chmod(0o666)  # Dovecot's auth worker runs as another user
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="dovecot-login-check", daemon=True
        )

    @property
    def sign_ins(self) -> SignInLog:
        return self._server.sign_ins

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self.socket_path.unlink(missing_ok=True)

    def passdb_args(self) -> str:
        """The passdb dict configuration file's content."""
        return (
            f"uri = proxy:{self.socket_path}:{DICT_NAME}\n"
            "default_pass_scheme = PLAIN\n"
            f"key {DICT_NAME} {{\n  key = {KEY_TEMPLATE}\n  format = json\n}}\n"
            f"passdb_objects = {DICT_NAME}\n"
        )
