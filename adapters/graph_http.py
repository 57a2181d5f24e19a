"""HTTP to Microsoft Graph for one mailbox: token, TLS, proxy, throttling, retries, ``$batch``.

* requests with ``trust_env`` off, so the configured CA bundle really applies (REQUESTS_CA_BUNDLE
  cannot override it); HTTPS_PROXY / NO_PROXY are read explicitly; every request has timeouts.
* Every request carries ``Prefer: IdType="ImmutableId"``: message ids survive moves.
* 429 and 503 are waited out per ``Retry-After`` within ``max_throttle_wait_s`` and repeated.
* 401 gets one fresh token (``force_refresh``) and one more try; then an AuthenticationError
  that says whether the audience or the expiry is wrong.
* A GET whose connection drops is repeated once (reads change nothing).
* :meth:`GraphHttp.upload` PUTs to a pre-authenticated URL (an upload session's): HTTPS only, never
  with the token, with the same TLS, proxy, timeout and throttling rules.
* ``$batch`` sends up to 20 requests as 4 chains (``dependsOn``), so no more than 4 run at once
  in the mailbox; requests that failed because of their chain (424) or were throttled are sent
  again. Requests to 20 different mailboxes (``chained=False``) need no chains: each is the only
  one in its mailbox.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from wicbox_bridge import __version__
from wicbox_bridge.adapters import graph_errors as errors
from wicbox_bridge.adapters import net_errors
from wicbox_bridge.adapters.base import AccessToken, TokenProvider
from wicbox_bridge.adapters.graph_errors import GraphReply
from wicbox_bridge.adapters.graph_settings import GraphSettings
from wicbox_bridge.adapters.identity import tls_verify_setting
from wicbox_bridge.errors import BridgeError

log = logging.getLogger("wicbox.graph")

IMMUTABLE_IDS = 'IdType="ImmutableId"'
RETRYABLE = frozenset({429, 503})
FAILED_DEPENDENCY = 424
DEFAULT_RETRY_AFTER_S = 1.0
TOKEN_MARGIN_S = 60.0  # ask for a token again when the current one has less left


class SessionTokens:
    """The token a mailbox session sends, renewed at most once per rejected generation (thread-safe)."""

    def __init__(self, tokens: TokenProvider) -> None:
        self._tokens = tokens
        self._lock = threading.Lock()
        self._token: AccessToken | None = None
        self._generation = 0

    def __repr__(self) -> str:
        return f"SessionTokens({self._tokens!r})"

    def current(self) -> tuple[int, AccessToken]:
        with self._lock:
            if self._token is None or self._token.expires_at - time.time() < TOKEN_MARGIN_S:
                self._token = self._tokens()
                self._generation += 1
            return self._generation, self._token

    def renew(self, rejected_generation: int) -> tuple[int, AccessToken]:
        """A freshly issued token, unless another thread already replaced the rejected one."""
        with self._lock:
            if self._token is None or self._generation == rejected_generation:
                self._token = self._tokens(force_refresh=True)
                self._generation += 1
            return self._generation, self._token


@dataclass(frozen=True)
class BatchCall:
    """One request for ``$batch``: ``url`` relative to the API root (``/me/messages/{id}/move``)."""

    key: str
    method: str
    url: str
    body: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class BatchOutcome:
    key: str
    status: int
    body: Any
    retry_after_s: float = DEFAULT_RETRY_AFTER_S

    @property
    def reply(self) -> GraphReply | None:
        """The error reply, None on success."""
        return errors.parse_reply(self.status, self.body) if self.status >= 400 else None


def _retry_after(headers: Mapping[str, str], now: float | None = None) -> float:
    """Retry-After in seconds, written as seconds or as an HTTP date (RFC 9110); a default else."""
    for name, value in headers.items():
        if name.lower() == "retry-after":
            return retry_after_seconds(value, time.time() if now is None else now)
    return DEFAULT_RETRY_AFTER_S


def retry_after_seconds(value: str, now: float) -> float:
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER_S
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return max(0.0, moment.timestamp() - now)


@dataclass(frozen=True)
class Content:
    """A request body other than JSON: its bytes and its Content-Type."""

    data: bytes = field(repr=False)
    content_type: str


@dataclass(frozen=True)
class _Call:
    """One request as the retry loop repeats it."""

    method: str
    url: str = field(repr=False)  # an upload URL carries its own authorization
    doing: str
    params: Mapping[str, str] | None = None
    body: Mapping[str, Any] | None = None
    accept: str = "application/json"
    content: Content | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


class GraphHttp:
    """Requests to Microsoft Graph on behalf of one mailbox; safe to use from 4 threads at once."""

    def __init__(
        self,
        settings: GraphSettings,
        tokens: TokenProvider,
        mailbox: str,
        *,
        env: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``sleep`` waits out Retry-After (tests inject one that records the waits)."""
        self.settings = settings
        self.mailbox = mailbox
        self.tokens = SessionTokens(tokens)
        self._sleep = sleep
        self.env = dict(os.environ if env is None else env)
        self.host = urlsplit(settings.api_root).netloc
        self._session = requests.Session()
        self._session.trust_env = False
        self._session.verify = tls_verify_setting(settings.ca_bundle, self.env)
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=settings.concurrency)
        self._session.mount("https://", adapter)
        self._proxies = self._proxy_setting(settings.api_root)

    def __repr__(self) -> str:
        return f"GraphHttp({self.host}, {self.mailbox!r})"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> GraphHttp:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def claims(self) -> dict[str, object]:
        """The non-secret claims of the token in use (asks the token layer when there is none)."""
        return self.tokens.current()[1].claims

    # ---- plain requests ----------------------------------------------------------------------
    def get_json(
        self,
        url: str,
        doing: str,
        params: Mapping[str, str] | None = None,
        *,
        refused: Callable[[GraphReply], BridgeError] | None = None,
    ) -> dict[str, Any]:
        return _json_object(self.request("GET", url, doing, params=params, refused=refused))

    def get_bytes(self, url: str, doing: str) -> bytes:
        return self.request("GET", url, doing, accept="*/*").content

    def send_json(
        self,
        method: str,
        url: str,
        doing: str,
        body: Mapping[str, Any],
        *,
        refused: Callable[[GraphReply], BridgeError] | None = None,
    ) -> dict[str, Any]:
        return _json_object(self.request(method, url, doing, body=body, refused=refused))

    def request(
        self,
        method: str,
        url: str,
        doing: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        accept: str = "application/json",
        content: Content | None = None,
        refused: Callable[[GraphReply], BridgeError] | None = None,
        prefer: str = "",
    ) -> requests.Response:
        """One request with the retry rules of the module docstring; a reply >= 400 raises.

        ``content``: a body other than JSON (its bytes and type); ``refused``: the error for a final
        reply other than the ones every request shares (sign-in, throttling, a missing mailbox);
        ``prefer``: preferences sent next to the immutable ids (``odata.maxpagesize=N``).
        """
        headers = {"Prefer": prefer} if prefer else {}
        call = _Call(method, self._absolute(url), doing, params, body, accept, content, headers)
        return self._exchange(call, self._proxies, refused, authorized=True)

    def upload(
        self,
        url: str,
        content: Content,
        content_range: str,
        doing: str,
        refused: Callable[[GraphReply], BridgeError],
    ) -> requests.Response:
        """PUT ``content`` to a pre-authenticated upload URL; ``refused`` builds the error for every
        final reply >= 400 (the URL carries its own authorization: the token is never sent there)."""
        if not url.lower().startswith("https://"):
            raise errors.insecure_upload(self.host)
        call = _Call("PUT", url, doing, content=content, headers={"Content-Range": content_range})
        return self._exchange(call, self._proxy_setting(url), refused, authorized=False)

    def _exchange(
        self,
        call: _Call,
        proxies: Mapping[str, str],
        refused: Callable[[GraphReply], BridgeError] | None,
        *,
        authorized: bool,
    ) -> requests.Response:
        generation, token = self.tokens.current() if authorized else (0, None)
        host = self.host if authorized else urlsplit(call.url).netloc  # an upload URL's own host
        waited = 0.0
        renewed = repeated = False
        while True:
            try:
                response = self._send(call, token, proxies)
            except requests.RequestException as exc:
                if call.method == "GET" and not repeated and _worth_repeating(exc):
                    repeated = True
                    log.warning("The connection to %s broke while %s; trying once more", host, call.doing)
                    continue
                raise errors.connection_failure(exc, host, self.settings.ca_bundle) from exc
            if response.status_code < 400:
                return response
            reply = errors.reply_of(response)
            if response.status_code in RETRYABLE:
                waited += self._wait(_retry_after(response.headers), waited, reply, call.doing)
            elif token is not None and response.status_code == 401 and not renewed:
                renewed = True
                log.warning(
                    "%s refused the token of %s (%s); getting a new one", self.host, self.mailbox, reply.code
                )
                generation, token = self.tokens.renew(generation)
            elif refused is not None and (token is None or response.status_code not in (401, 404)):
                raise refused(reply)
            else:
                claims = token.claims if token is not None else {}
                raise errors.translate(
                    reply, host=self.host, mailbox=self.mailbox, claims=claims, doing=call.doing
                )

    def _send(self, call: _Call, token: AccessToken | None, proxies: Mapping[str, str]) -> requests.Response:
        headers = {
            "Accept": call.accept,
            "User-Agent": f"wicbox-bridge/{__version__}",
            "client-request-id": str(uuid.uuid4()),
            **call.headers,
        }
        if token is not None:
            headers["Authorization"] = f"Bearer {token.value.reveal()}"
            headers["Prefer"] = ", ".join(filter(None, (call.headers.get("Prefer"), IMMUTABLE_IDS)))
        timeout = (self.settings.connect_timeout_s, self.settings.read_timeout_s)
        payload: dict[str, Any] = {"json": call.body}
        if call.content is not None:
            headers["Content-Type"] = call.content.content_type
            payload = {"data": call.content.data}
        return self._session.request(
            call.method,
            call.url,
            params=call.params,
            headers=headers,
            timeout=timeout,
            proxies=dict(proxies),
            **payload,
        )

    def _wait(self, delay: float, waited: float, reply: GraphReply, doing: str) -> float:
        if waited + delay > self.settings.max_throttle_wait_s:
            raise errors.still_throttled(self.host, self.mailbox, waited, reply)
        log.warning(
            "%s answered HTTP %d (%s) for %s; waiting %.1f s before %s again",
            self.host,
            reply.status,
            reply.code or "busy",
            self.mailbox,
            delay,
            doing,
        )
        self._sleep(delay)
        return delay

    def _absolute(self, url: str) -> str:
        """A path below the API root, or a next-page link, which must stay on the same host."""
        if not url.startswith("https://"):
            return f"{self.settings.api_root}{url}"
        link_host = urlsplit(url).netloc
        if link_host.lower() != self.host.lower():
            raise errors.foreign_link(self.host, link_host)
        return url

    def _proxy_setting(self, url: str) -> dict[str, str]:
        no_proxy = self.env.get("NO_PROXY") or self.env.get("no_proxy")
        if requests.utils.should_bypass_proxies(url, no_proxy=no_proxy):
            return {}
        proxy = self.env.get("HTTPS_PROXY") or self.env.get("https_proxy")
        return {"https": proxy} if proxy else {}

    # ---- $batch ------------------------------------------------------------------------------
    def batch(
        self, calls: Sequence[BatchCall], doing: str, *, chained: bool = True
    ) -> dict[str, BatchOutcome]:
        """Every call's final outcome (2xx or an error reply) by key; throttled ones are repeated
        (only those, after the longest Retry-After among them)."""
        outcomes: dict[str, BatchOutcome] = {}
        pending = list(calls)
        waited = 0.0
        while pending:
            chunk, pending = pending[: self.settings.batch_size], pending[self.settings.batch_size :]
            answered = self._send_batch(chunk, doing, chained)
            again: list[BatchCall] = []
            delay = 0.0
            throttled: GraphReply | None = None
            for call in chunk:
                outcome = answered[call.key]
                if outcome.status in RETRYABLE:
                    delay = max(delay, outcome.retry_after_s)
                    throttled = outcome.reply
                    again.append(call)
                elif outcome.status == FAILED_DEPENDENCY:
                    again.append(call)
                else:
                    outcomes[call.key] = outcome
            if throttled is not None:
                waited += self._wait(delay, waited, throttled, doing)
            elif len(again) == len(chunk):  # nothing answered, nothing to wait for: no progress
                raise errors.batch_unanswered(self.host, self.mailbox, doing)
            pending = again + pending
        return outcomes

    def _send_batch(self, chunk: list[BatchCall], doing: str, chained: bool) -> dict[str, BatchOutcome]:
        chains = self.settings.concurrency if chained else len(chunk)
        requests_json = []
        for index, call in enumerate(chunk):
            item: dict[str, Any] = {
                "id": str(index + 1),
                "method": call.method,
                "url": call.url,
                "headers": {"Prefer": IMMUTABLE_IDS},
            }
            if call.body is not None:
                item["body"] = dict(call.body)
                item["headers"]["Content-Type"] = "application/json"
            if index >= chains:
                item["dependsOn"] = [str(index + 1 - chains)]
            requests_json.append(item)
        answer = self.send_json("POST", "/$batch", doing, {"requests": requests_json})
        by_id: dict[str, BatchOutcome] = {}
        for response in answer.get("responses", []):
            index = int(response.get("id", 0)) - 1
            if 0 <= index < len(chunk):
                call = chunk[index]
                headers = response.get("headers") or {}
                delay = _retry_after({str(name): str(value) for name, value in dict(headers).items()})
                by_id[call.key] = BatchOutcome(
                    call.key, int(response.get("status", 0)), response.get("body"), delay
                )
        missing = [call.key for call in chunk if call.key not in by_id]
        for key in missing:  # a batch reply without an answer for a request: send it again
            by_id[key] = BatchOutcome(key, FAILED_DEPENDENCY, None)
        return by_id


def _worth_repeating(exc: requests.RequestException) -> bool:
    """A connection that broke, not one that never began (DNS, refused, TLS: the same again)."""
    ssl_or_proxy = isinstance(exc, (requests.exceptions.SSLError, requests.exceptions.ProxyError))
    never_began = net_errors.classify(exc)[0] in _NEVER_BEGAN
    return isinstance(exc, requests.exceptions.ConnectionError) and not ssl_or_proxy and not never_began


_NEVER_BEGAN = frozenset(
    {
        net_errors.NetFailure.DNS,
        net_errors.NetFailure.REFUSED,
        net_errors.NetFailure.UNREACHABLE,
        net_errors.NetFailure.CERTIFICATE,
        net_errors.NetFailure.TLS,
    }
)


def _json_object(response: requests.Response) -> dict[str, Any]:
    if not response.content:
        return {}
    try:
        document = response.json()
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}
