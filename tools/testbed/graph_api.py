"""The Graph emulator's endpoints: routing, the mail operations, ``$batch``, faults and the log.

Routes under ``/v1.0`` with ``{root}`` = ``me`` or ``users/{id or upn}``:

- ``GET|POST {root}/mailFolders``, ``GET {root}/mailFolders/{id or well-known name}``
- ``GET|POST {root}/mailFolders/{id}/childFolders``, ``GET {root}/mailFolders/{id}/messages``
- ``GET {root}/mailFolders/{id}/messages/delta`` (:mod:`tools.testbed.graph_delta`)
- ``GET|PATCH|DELETE {root}/messages/{id}``, ``GET {root}/messages/{id}/$value``
- ``POST {root}/messages/{id}/move``, ``POST {root}/messages/{id}/permanentDelete``
- ``POST {root}/sendMail`` (MIME), :mod:`tools.testbed.graph_send`
- ``POST {root}/messages`` (a draft), ``GET|POST {root}/messages/{id}/attachments``,
  ``POST {root}/messages/{id}/attachments/createUploadSession``, ``POST {root}/messages/{id}/send``:
  :mod:`tools.testbed.graph_drafts`; ``PUT|DELETE`` on an upload URL: :mod:`tools.testbed.graph_uploads`
- ``POST /$batch`` (at most 20 requests; ``dependsOn``; bodies that are not JSON base64-encoded)

Every request is at most 4 MB (``413``), as at Microsoft Graph.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

from tools.testbed.graph_auth import AccessPolicies, authenticate, authorize
from tools.testbed.graph_delta import DeltaRequest, DeltaStates
from tools.testbed.graph_docs import (
    ApiReply,
    context_url,
    error_reply,
    folder_document,
    json_reply,
    message_document,
)
from tools.testbed.graph_drafts import (
    add_attachment,
    attachment_document,
    create_draft,
    draft_of,
    open_upload_session,
    send_draft,
)
from tools.testbed.graph_model import ROOT, GraphStoreError, Mailbox, MailStore
from tools.testbed.graph_query import (
    parse_message_query,
    parse_skip,
    parse_top,
    selected,
    skiptoken,
    with_message_size,
)
from tools.testbed.graph_send import MAX_REQUEST_BYTES, send_mime
from tools.testbed.graph_traffic import (
    ConcurrencyGauge,
    GraphFault,
    GraphFaultPlan,
    GraphRequestLog,
    GraphRequestRecord,
)
from tools.testbed.graph_uploads import UPLOAD_PREFIX, answer_upload
from tools.testbed.tokens import TokenRules

MAX_BATCH = 20
RECORDED_HEADERS = frozenset({"content-range", "content-type"})  # never authorization
SEND_PERMISSIONS = frozenset({"Mail.Send"})
VERSION = "/v1.0"


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str  # below the host, with /v1.0
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: bytes = b""

    @property
    def immutable_ids(self) -> bool:
        return "immutableid" in self.headers.get("prefer", "").replace(" ", "").lower()

    def json_body(self) -> dict[str, Any]:
        try:
            document = json.loads(self.body or b"{}")
        except ValueError:
            raise GraphStoreError(400, "BadRequest", "Unable to read JSON request payload.") from None
        if not isinstance(document, dict):
            raise GraphStoreError(400, "BadRequest", "Unable to read JSON request payload.")
        return document


@dataclass(frozen=True)
class Route:
    user_ref: str | None  # None: /me
    rest: tuple[str, ...]


def parse_route(path: str) -> Route:
    parts = [unquote(part) for part in path.split("/") if part]
    if parts[:1] == ["v1.0"]:
        parts = parts[1:]
    if parts[:1] == ["me"]:
        return Route(None, tuple(parts[1:]))
    if parts[:1] == ["users"] and len(parts) >= 2:
        return Route(parts[1], tuple(parts[2:]))
    segment = parts[0] if parts else ""
    raise GraphStoreError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")


def fault_reply(fault: GraphFault) -> ApiReply:
    headers = (("Retry-After", f"{fault.retry_after:g}"),) if fault.retry_after is not None else ()
    if fault.kind == "throttle":
        return error_reply(
            429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.", headers
        )
    if fault.kind == "unauthorized":
        return error_reply(
            401,
            "InvalidAuthenticationToken",
            "Access token has expired or is not yet valid.",
            (("WWW-Authenticate", 'Bearer realm="", error="invalid_token"'),),
        )
    return error_reply(fault.status, "ServiceUnavailable", "The service is temporarily unavailable.", headers)


def concurrency_refused() -> ApiReply:
    return error_reply(
        429,
        "ApplicationThrottled",
        "Application is over its MailboxConcurrency limit.",
        (("Retry-After", "1"),),
    )


@dataclass
class _Call:
    """One request being answered: its mailbox once authorized, and its timing for the log."""

    request: ApiRequest
    in_batch: bool
    started: float = field(default_factory=time.monotonic)
    mailbox: Mailbox | None = None


class GraphApi:
    """Answers :class:`ApiRequest` objects; thread-safe."""

    def __init__(
        self,
        store: MailStore,
        rules: TokenRules,
        base_url: Callable[[], str],
        log: GraphRequestLog,
        faults: GraphFaultPlan,
        gauge: ConcurrencyGauge,
        policies: AccessPolicies,
        upload_faults: GraphFaultPlan,
        batch_faults: GraphFaultPlan,
        delta: DeltaStates | None = None,
    ) -> None:
        self._store = store
        self.delta = delta or DeltaStates()
        self._upload_faults = upload_faults
        self._batch_faults = batch_faults
        self._rules = rules
        self._base_url = base_url
        self._log = log
        self._faults = faults
        self._gauge = gauge
        self._policies = policies

    # ---- top level ---------------------------------------------------------------------------
    def handle(self, request: ApiRequest) -> ApiReply | None:
        """The reply, or None when a ``drop`` fault says to close the connection unanswered."""
        call = _Call(request, in_batch=False)
        fault = self._faults.take()
        if fault is not None:
            reply = None if fault.kind == "drop" else fault_reply(fault)
            self._record(call, reply, fault.kind)
            return reply
        if len(request.body) > MAX_REQUEST_BYTES:
            return self._record(
                call,
                error_reply(
                    413, "ErrorRequestEntityTooLarge", "The request exceeds the maximum size of 4 MB."
                ),
            )
        if request.path.startswith(UPLOAD_PREFIX):
            return self._upload(call)
        try:
            claims = authenticate(request.headers.get("authorization"), self._rules)
        except GraphStoreError as error:
            return self._record(call, error_reply(error.status, error.code, error.message))
        if request.path.rstrip("/") == f"{VERSION}/$batch":
            if request.method != "POST":
                return self._record(call, error_reply(405, "BadRequest", "$batch takes POST."))
            return self._record(call, self._batch(request, claims))
        return self._single(call, claims)

    def _upload(self, call: _Call) -> ApiReply | None:
        """A chunk to (or the cancelling of) an upload session: no token, the URL authorizes."""
        fault = self._upload_faults.take()
        if fault is not None:
            reply = None if fault.kind == "drop" else fault_reply(fault)
            self._record(call, reply, fault.kind)
            return reply
        request = call.request
        with self._store.locked():
            reply, call.mailbox = answer_upload(
                self._store, request.method, request.path, request.query, request.headers, request.body
            )
        return self._record(call, reply)

    def _single(self, call: _Call, claims: Mapping[str, Any]) -> ApiReply:
        try:
            route = parse_route(call.request.path)
            sending = route.rest == ("sendMail",) or (
                route.rest[:1] == ("messages",) and route.rest[2:] == ("send",)
            )
            needed = SEND_PERMISSIONS if sending else None
            call.mailbox = authorize(
                claims, route.user_ref, call.request.method, self._store, self._policies, needed=needed
            )
        except GraphStoreError as error:
            return self._record(call, error_reply(error.status, error.code, error.message))
        if self._gauge.enter(call.mailbox.upn) == 0:
            return self._record(call, concurrency_refused())
        try:
            time.sleep(self._faults.delay)
            reply = self._dispatch(call.mailbox, route, call.request)
        finally:
            self._gauge.leave(call.mailbox.upn)
        return self._record(call, reply)

    def _record(self, call: _Call, reply: ApiReply | None, fault: Any = None) -> ApiReply:
        request = call.request
        self._log.append(
            GraphRequestRecord(
                method=request.method,
                path=request.path,
                query=urlencode({key: value for key, value in request.query.items() if key != "authtoken"}),
                mailbox=call.mailbox.upn if call.mailbox else None,
                status=reply.status if reply else 0,
                code=reply.code if reply else None,
                started=call.started,
                ended=time.monotonic(),
                in_batch=call.in_batch,
                immutable_ids=request.immutable_ids,
                fault=fault,
                size=len(request.body),
                headers=tuple(
                    (name, value) for name, value in request.headers.items() if name in RECORDED_HEADERS
                ),
            )
        )
        return reply  # type: ignore[return-value]  # None only for a drop fault

    # ---- operations --------------------------------------------------------------------------
    def _dispatch(self, mailbox: Mailbox, route: Route, request: ApiRequest) -> ApiReply:
        try:
            with self._store.locked():
                return self._operation(mailbox, route.rest, request)
        except GraphStoreError as error:
            return error_reply(error.status, error.code, error.message)

    def _operation(self, mailbox: Mailbox, rest: tuple[str, ...], request: ApiRequest) -> ApiReply:
        method = request.method
        match rest:
            case ("mailFolders",) if method in ("GET", "POST"):
                return self._folders(mailbox, ROOT, request)
            case ("mailFolders", folder) if method == "GET":
                document = folder_document(mailbox, mailbox.folder(folder))
                return json_reply(
                    200,
                    {"@odata.context": context_url(self._base(), mailbox, "mailFolders/$entity"), **document},
                )
            case ("mailFolders", folder, "childFolders") if method in ("GET", "POST"):
                return self._folders(mailbox, folder, request)
            case ("mailFolders", folder, "messages") if method == "GET":
                return self._messages(mailbox, folder, request)
            case ("mailFolders", folder, "messages", "delta") if method == "GET":
                return self._delta(mailbox, folder, request)
            case ("messages", message_id) if method in ("GET", "PATCH", "DELETE"):
                return self._message(mailbox, message_id, request)
            case ("messages", message_id, "$value") if method == "GET":
                return ApiReply(200, mailbox.message(message_id).raw, "text/plain")
            case ("messages", message_id, "move") if method == "POST":
                return self._move(mailbox, message_id, request)
            case ("messages", message_id, "permanentDelete") if method == "POST":
                mailbox.purge(message_id)
                return ApiReply(204)
            case ("sendMail",) if method == "POST":
                return send_mime(mailbox, request.headers.get("content-type", ""), request.body)
            case ("messages",) if method == "POST":
                return self._create_draft(mailbox, request)
            case ("messages", message_id, "attachments") if method == "POST":
                attachment = add_attachment(mailbox, message_id, request.json_body())
                return json_reply(201, attachment_document(attachment))
            case ("messages", message_id, "attachments") if method == "GET":
                _message, draft = draft_of(mailbox, message_id)
                documents = [attachment_document(a) for a in draft.attachments]
                return json_reply(200, {"value": [selected(d, _select(request)) for d in documents]})
            case ("messages", message_id, "attachments", "createUploadSession") if method == "POST":
                return open_upload_session(mailbox, message_id, request.json_body(), self._base())
            case ("messages", message_id, "send") if method == "POST":
                return send_draft(mailbox, message_id)
        segment = "/".join(rest)
        raise GraphStoreError(
            400, "BadRequest", f"Resource not found for the segment '{segment}' ({method})."
        )

    def _base(self) -> str:
        return self._base_url()

    def _create_draft(self, mailbox: Mailbox, request: ApiRequest) -> ApiReply:
        if not request.headers.get("content-type", "").lower().startswith("application/json"):
            raise GraphStoreError(400, "ErrorInvalidRequest", "This emulator creates drafts from JSON only.")
        message = create_draft(mailbox, request.json_body())
        document = message_document(message, immutable=request.immutable_ids)
        context = context_url(self._base(), mailbox, "messages/$entity")
        return json_reply(201, {"@odata.context": context, **document}, _preference(request))

    def _folders(self, mailbox: Mailbox, parent: str, request: ApiRequest) -> ApiReply:
        if request.method == "POST":
            name = str(request.json_body().get("displayName", ""))
            folder = mailbox.create_folder(parent, name)
            return json_reply(201, folder_document(mailbox, folder))
        children = sorted(
            mailbox.children(mailbox.folder(parent).folder_id), key=lambda f: f.display_name.lower()
        )
        top, skip = parse_top(request.query), parse_skip(request.query)
        page = children[skip : skip + top]
        document: dict[str, Any] = {
            "@odata.context": context_url(self._base(), mailbox, "mailFolders"),
            "value": [selected(folder_document(mailbox, f), _select(request)) for f in page],
        }
        if skip + top < len(children):
            document["@odata.nextLink"] = self._next_link(request, skip + top)
        return json_reply(200, document)

    def _messages(self, mailbox: Mailbox, folder: str, request: ApiRequest) -> ApiReply:
        query = parse_message_query(request.query)
        messages = mailbox.in_folder(mailbox.folder(folder).folder_id)
        page, more = query.apply(messages)
        immutable = request.immutable_ids
        fields = f"({','.join(query.select)})" if query.select else ""
        document: dict[str, Any] = {
            "@odata.context": context_url(self._base(), mailbox, f"mailFolders('{folder}')/messages{fields}"),
        }
        if query.count:
            document["@odata.count"] = len(query.matching(messages))
        documents = [selected(message_document(m, immutable=immutable), query.select) for m in page]
        if query.message_size:
            documents = [with_message_size(d, len(m.raw)) for d, m in zip(documents, page, strict=True)]
        document["value"] = documents
        if more:
            document["@odata.nextLink"] = self._next_link(request, query.skip + query.top)
        return json_reply(200, document, _preference(request))

    def _delta(self, mailbox: Mailbox, folder: str, request: ApiRequest) -> ApiReply:
        delta = DeltaRequest(
            path=request.path,
            query=request.query,
            prefer=request.headers.get("prefer", ""),
            immutable=request.immutable_ids,
            base=self._base(),
        )
        return self.delta.answer(mailbox, mailbox.folder(folder).folder_id, delta)

    def _message(self, mailbox: Mailbox, message_id: str, request: ApiRequest) -> ApiReply:
        if request.method == "DELETE":
            mailbox.delete(message_id)
            return ApiReply(204)
        message = mailbox.message(message_id)
        if request.method == "PATCH":
            changes = request.json_body()
            if "isRead" in changes:
                message.is_read = bool(changes["isRead"])
        document = message_document(message, immutable=request.immutable_ids)
        return json_reply(200, selected(document, _select(request)), _preference(request))

    def _move(self, mailbox: Mailbox, message_id: str, request: ApiRequest) -> ApiReply:
        destination = str(request.json_body().get("destinationId", ""))
        if not destination:
            raise GraphStoreError(400, "ErrorInvalidIdMalformed", "Id is malformed.")
        moved = mailbox.move(message_id, destination)
        return json_reply(201, message_document(moved, immutable=request.immutable_ids), _preference(request))

    def _next_link(self, request: ApiRequest, offset: int) -> str:
        query = {name: value for name, value in request.query.items() if name != "$skiptoken"}
        query["$skiptoken"] = skiptoken(offset)
        return f"{self._base()}{request.path}?{urlencode(query, quote_via=quote, safe='$,')}"

    # ---- $batch ------------------------------------------------------------------------------
    def _batch(self, request: ApiRequest, claims: Mapping[str, Any]) -> ApiReply:
        try:
            items = _batch_items(request.json_body())
        except GraphStoreError as error:
            return error_reply(error.status, error.code, error.message)
        answered: dict[str, dict[str, Any]] = {}
        for wave in _waves(items):
            self._run_wave(wave, claims, request, answered)
        # Graph answers in any order: the last answered first, so no client can rely on the order
        return json_reply(200, {"responses": list(reversed(answered.values()))})

    def _run_wave(
        self,
        wave: list[dict[str, Any]],
        claims: Mapping[str, Any],
        outer: ApiRequest,
        answered: dict[str, dict[str, Any]],
    ) -> None:
        ready: list[tuple[Mailbox, _Call, dict[str, Any]]] = []
        for item in wave:
            call = _Call(_sub_request(item, outer), in_batch=True)
            failed = [d for d in item.get("dependsOn", []) if answered.get(d, {}).get("status", 0) >= 400]
            fault = self._batch_faults.take()
            if fault is not None:
                answered[item["id"]] = _sub_response(item, self._record(call, fault_reply(fault), fault.kind))
                continue
            try:
                if failed:
                    raise GraphStoreError(
                        424, "FailedDependency", "The request depends on a request that failed."
                    )
                route = parse_route(call.request.path)
                call.mailbox = authorize(
                    claims, route.user_ref, call.request.method, self._store, self._policies
                )
            except GraphStoreError as error:
                answered[item["id"]] = _sub_response(
                    item, self._record(call, error_reply(error.status, error.code, error.message))
                )
                continue
            ready.append((call.mailbox, call, item))
        by_mailbox: dict[str, list[tuple[Mailbox, _Call, dict[str, Any]]]] = {}
        for entry in ready:
            by_mailbox.setdefault(entry[0].upn, []).append(entry)
        time.sleep(self._faults.delay)
        for upn, calls in by_mailbox.items():
            admitted = self._gauge.enter(upn, len(calls))
            try:
                for index, (mailbox, call, item) in enumerate(calls):
                    route = parse_route(call.request.path)
                    refused = index >= admitted
                    reply = concurrency_refused() if refused else self._dispatch(mailbox, route, call.request)
                    answered[item["id"]] = _sub_response(item, self._record(call, reply))
            finally:
                self._gauge.leave(upn, admitted)


def _select(request: ApiRequest) -> tuple[str, ...]:
    return tuple(item.strip() for item in request.query.get("$select", "").split(",") if item.strip())


def _preference(request: ApiRequest) -> tuple[tuple[str, str], ...]:
    return (("Preference-Applied", 'IdType="ImmutableId"'),) if request.immutable_ids else ()


def _batch_items(document: dict[str, Any]) -> list[dict[str, Any]]:
    items = document.get("requests")
    if not isinstance(items, list) or not items:
        raise GraphStoreError(400, "BadRequest", "Invalid batch payload format.")
    if len(items) > MAX_BATCH:
        raise GraphStoreError(
            400, "BadRequest", f"Number of requests in batch exceeds the limit of {MAX_BATCH}."
        )
    ids = [str(item.get("id", "")) for item in items if isinstance(item, dict)]
    if len(ids) != len(items) or "" in ids or len(set(ids)) != len(ids):
        raise GraphStoreError(400, "BadRequest", "Each request of a batch needs a unique id.")
    for item in items:
        if not item.get("method") or not item.get("url"):
            raise GraphStoreError(400, "BadRequest", "Each request of a batch needs a method and a url.")
        if "body" in item and not any(k.lower() == "content-type" for k in item.get("headers", {})):
            raise GraphStoreError(
                400, "BadRequest", "Content-Type header must be specified for a request body."
            )
        unknown = [d for d in item.get("dependsOn", []) if d not in ids]
        if unknown:
            raise GraphStoreError(400, "BadRequest", f"dependsOn names unknown request id(s) {unknown}.")
    return items


def _waves(items: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Requests grouped by dependency depth: the ones in one wave run at the same time."""
    depth: dict[str, int] = {}
    by_id = {item["id"]: item for item in items}

    def depth_of(item_id: str, seen: frozenset[str] = frozenset()) -> int:
        if item_id in seen:
            raise GraphStoreError(400, "BadRequest", "The dependsOn chain is circular.")
        if item_id not in depth:
            parents = by_id[item_id].get("dependsOn", [])
            depth[item_id] = 1 + max((depth_of(p, seen | {item_id}) for p in parents), default=-1)
        return depth[item_id]

    waves: dict[int, list[dict[str, Any]]] = {}
    for item in items:
        waves.setdefault(depth_of(item["id"]), []).append(item)
    return [waves[level] for level in sorted(waves)]


def _sub_request(item: dict[str, Any], outer: ApiRequest) -> ApiRequest:
    url = urlsplit(str(item["url"]))
    path = url.path if url.path.startswith("/") else f"/{url.path}"
    headers = {name.lower(): str(value) for name, value in dict(item.get("headers", {})).items()}
    query = {unquote(k): unquote(v) for k, _, v in (p.partition("=") for p in url.query.split("&") if p)}
    body = json.dumps(item["body"]).encode() if "body" in item else b""
    request = ApiRequest(str(item["method"]).upper(), f"{VERSION}{path}", query, headers, body)
    return replace(request, headers={"authorization": outer.headers.get("authorization", ""), **headers})


def _sub_response(item: dict[str, Any], reply: ApiReply) -> dict[str, Any]:
    """A response inside a batch: JSON bodies as JSON, anything else base64-encoded (like Graph)."""
    response: dict[str, Any] = {
        "id": item["id"],
        "status": reply.status,
        "headers": {"Content-Type": reply.content_type, **dict(reply.headers)},
    }
    if reply.body:
        is_json = reply.content_type.startswith("application/json")
        response["body"] = reply.json() if is_json else base64.b64encode(reply.body).decode("ascii")
    return response


def utc(moment: dt.datetime | None) -> dt.datetime:
    if moment is None:
        return dt.datetime.now(dt.timezone.utc)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)
