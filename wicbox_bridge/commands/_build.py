"""Builds the adapters from the validated settings: the only place that does (see docs/architecture.md).

The Graph and SMTP adapters are imported inside the functions that build them: an IMAP
installation's ``wicbox run`` does not load Graph, and a run whose outbox is empty does not load
aiosmtplib (start-up, issue 18).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from wicbox_bridge.adapters.base import AccessToken, MailboxSession, MailboxWatch, Sender, TokenProvider
from wicbox_bridge.adapters.identity import TokenService
from wicbox_bridge.adapters.imap import ImapAdapter, ImapSettings
from wicbox_bridge.adapters.imap_connect import OAuthSignIn, PasswordSignIn, SignIn
from wicbox_bridge.adapters.token_cache import token_cache_path
from wicbox_bridge.auth.accounts import AccountPlan, MailboxAccount, MailboxOpener
from wicbox_bridge.auth.scopes import TokenProtocol, resolve_mail_protocol
from wicbox_bridge.config.params import (
    METHOD,
    SEND_PROTOCOL,
    MailProtocol,
    Parameters,
    PermissionType,
    SendProtocol,
)
from wicbox_bridge.diagnostics.accounts import ProviderFactory
from wicbox_bridge.diagnostics.smtp import SmtpLoginProbe
from wicbox_bridge.errors import ParameterError
from wicbox_bridge.runtime import Runtime
from wicbox_bridge.send.outbox import LookupFor, SentLookup
from wicbox_bridge.send.routes import ROUTES_FILE_NAME, AutoSender, RouteMemory

if TYPE_CHECKING:  # the SMTP adapters (aiosmtplib, asyncio) load only when a mail is sent
    from wicbox_bridge.adapters.smtp import SmtpLogin, SmtpSender, SmtpSettings, StepListener


@contextmanager
def token_service(runtime: Runtime, params: Parameters) -> Iterator[TokenService]:
    """The token layer of this configuration, with its persisted cache in the state directory."""
    service = TokenService.from_parameters(
        params, token_cache_path(runtime.state_dir), env=dict(runtime.invocation.env)
    )
    try:
        if params.certificate is not None:  # a wrong file stops the command before any mailbox
            credential = service.certificate(params.certificate, params.certificate_password)
            runtime.redactor.register([credential.private_key_pem])
        yield service
    finally:
        service.close()


class _OneAtATime:
    """A token provider whose calls are serialised with the other providers of the same service.

    Mailboxes are read by several threads; the token cache, its file lock and msal's apps are then
    used by one thread at a time (acquiring a token takes milliseconds from the cache).
    """

    def __init__(self, provider: TokenProvider, lock: threading.Lock) -> None:
        self._provider = provider
        self._lock = lock

    def __getattr__(self, name: str) -> object:  # scopes, username: for `wicbox token`
        return getattr(self._provider, name)

    def __call__(self, *, force_refresh: bool = False) -> AccessToken:
        with self._lock:
            return self._provider(force_refresh=force_refresh)


def provider_factory(service: TokenService, params: Parameters) -> ProviderFactory:
    """Token providers per account: the account's own sign-in (delegated) or the app's (application)."""
    lock = threading.Lock()

    def provider_for(account: MailboxAccount, protocol: TokenProtocol) -> TokenProvider:
        provider = service.for_protocol(
            params, protocol, username=account.username, password=account.password, names=account.names
        )
        return _OneAtATime(provider, lock)

    return provider_for


def register_account_secrets(runtime: Runtime, plan: AccountPlan) -> None:
    """Project passwords come from WIC_PROJECT: mask them in logs like the global ones."""
    runtime.redactor.register([account.password for account in plan.accounts])


def mailbox_opener(
    params: Parameters, plan: AccountPlan, provider_for: ProviderFactory | None
) -> tuple[str, MailboxOpener]:
    """The protocol that reads the mailboxes and a function opening a session per account.

    ``provider_for`` None means Basic authentication: each account signs in with its password.
    """
    protocol, _reason = resolve_mail_protocol(params)
    if protocol is MailProtocol.GRAPH:
        return "graph", _graph_opener(params, provider_for)
    passwords = {account.mailbox: account.password for account in plan.accounts if account.password}
    adapter = ImapAdapter(ImapSettings.from_parameters(params), password=passwords)

    def open_mailbox(account: MailboxAccount) -> MailboxSession:
        tokens = provider_for(account, "imap") if provider_for is not None else None
        return adapter.open(account.mailbox, tokens)

    return "imap", open_mailbox


WatchOpener = Callable[[MailboxAccount], MailboxWatch]


def watch_opener(
    params: Parameters,
    plan: AccountPlan,
    provider_for: ProviderFactory | None,
    *,
    sleep: Callable[[float], None],
    poll_interval_s: float,
) -> WatchOpener:
    """Starts the watch of an account's mailbox for `wicbox serve`: IMAP IDLE, or Graph delta polling.

    ``sleep`` is the service's (it ends early when the service stops): reconnect pauses, polling
    intervals and Retry-After waits go through it.
    """
    protocol, _reason = resolve_mail_protocol(params)
    if protocol is MailProtocol.GRAPH:
        from wicbox_bridge.adapters.graph import GraphAdapter, GraphSettings  # noqa: PLC0415

        graph = GraphAdapter(
            GraphSettings.from_parameters(params), sleep=sleep, poll_interval_s=poll_interval_s
        )

        def watch_graph(account: MailboxAccount) -> MailboxWatch:
            return graph.watch(account.mailbox, provider_for(account, "graph") if provider_for else None)

        return watch_graph
    passwords = {account.mailbox: account.password for account in plan.accounts if account.password}
    imap = ImapAdapter(ImapSettings.from_parameters(params), password=passwords, sleep=sleep)

    def watch_imap(account: MailboxAccount) -> MailboxWatch:
        return imap.watch(account.mailbox, provider_for(account, "imap") if provider_for else None)

    return watch_imap


def _graph_opener(params: Parameters, provider_for: ProviderFactory | None) -> MailboxOpener:
    """Graph has no Basic authentication (parameter validation refuses Basic + GRAPH)."""
    from wicbox_bridge.adapters.graph import GraphAdapter, GraphSettings  # noqa: PLC0415

    adapter = GraphAdapter(GraphSettings.from_parameters(params))

    def open_mailbox(account: MailboxAccount) -> MailboxSession:
        tokens = provider_for(account, "graph") if provider_for is not None else None
        return adapter.open(account.mailbox, tokens)

    return open_mailbox


def mailbox_survey(
    params: Parameters, provider_for: ProviderFactory | None
) -> Callable[[Sequence[MailboxAccount]], Sequence[bool | None]] | None:
    """Graph: which mailboxes have mail waiting, in ``$batch`` requests across mailboxes (one app
    token reads them all; with delegated permissions every answer is 'unknown'). IMAP: None."""
    protocol, _reason = resolve_mail_protocol(params)
    if protocol is not MailProtocol.GRAPH or provider_for is None:
        return None
    from wicbox_bridge.adapters.graph import GraphAdapter, GraphSettings  # noqa: PLC0415

    adapter = GraphAdapter(GraphSettings.from_parameters(params))

    def survey(accounts: Sequence[MailboxAccount]) -> Sequence[bool | None]:
        tokens = provider_for(accounts[0], "graph")
        return adapter.survey([account.mailbox for account in accounts], tokens)

    return survey


def smtp_login(
    params: Parameters, account: MailboxAccount, provider_for: ProviderFactory | None
) -> SmtpLogin:
    """How ``account`` signs in to the SMTP server: XOAUTH2 (``provider_for``) or its password (Basic)."""
    from wicbox_bridge.adapters.smtp import Login, OAuthLogin, PasswordLogin  # noqa: PLC0415 - see above

    user = account.username or account.mailbox
    if provider_for is None:
        if not account.password:
            raise ParameterError(
                account.names.password_parameter,
                f"is empty, but Basic authentication sends as {user} with a password.",
                fix=f"fill in the password, or run `wicbox params set {METHOD} OAuth2`",
            )
        return PasswordLogin(user, account.password)
    application = params.permission_type is PermissionType.APPLICATION
    return OAuthLogin(
        account.mailbox if application else user,
        provider_for(account, "smtp"),
        Login.APPLICATION if application else Login.DELEGATED,
    )


def smtp_sender(
    params: Parameters,
    account: MailboxAccount,
    provider_for: ProviderFactory | None,
    *,
    on_step: StepListener | None = None,
    settings: SmtpSettings | None = None,
) -> SmtpSender:
    """The SMTP sender for ``account`` (``provider_for`` None: Basic authentication)."""
    from wicbox_bridge.adapters.smtp import SmtpSender, SmtpSettings  # noqa: PLC0415 - see the imports

    return SmtpSender(
        settings or SmtpSettings.from_parameters(params),
        smtp_login(params, account, provider_for),
        on_step=on_step,
    )


def graph_sender(params: Parameters, account: MailboxAccount, provider_for: ProviderFactory | None) -> Sender:
    """Microsoft Graph sendMail as ``account``'s mailbox (needs OAuth2 and Mail.Send)."""
    if provider_for is None:
        raise ParameterError(
            SEND_PROTOCOL,
            "is GRAPH, but WICBOXMETHOD is Basic: Microsoft Graph has no Basic authentication",
            fix=f"run `wicbox params set {METHOD} OAuth2`, or `wicbox params set {SEND_PROTOCOL} SMTP`",
        )
    from wicbox_bridge.adapters.graph import GraphSettings  # noqa: PLC0415
    from wicbox_bridge.adapters.graph_send import GraphSender  # noqa: PLC0415

    tokens = provider_for(account, "graph-send")
    return GraphSender(GraphSettings.from_parameters(params), tokens, account.mailbox)


def mail_sender(
    params: Parameters,
    account: MailboxAccount,
    provider_for: ProviderFactory | None,
    routes: RouteMemory,
    *,
    via: SendProtocol | None = None,
) -> Sender:
    """The sender of ``account`` on the route WICBOX_MAILCLIENT_SENDPROTOCOL (or ``via``) chooses."""
    route = via or params.send_protocol
    if route is SendProtocol.GRAPH:
        return graph_sender(params, account, provider_for)
    if route is SendProtocol.SMTP or provider_for is None:  # Basic: SMTP is the only route
        return smtp_sender(params, account, provider_for)
    return AutoSender(
        account.mailbox,
        lambda: smtp_sender(params, account, provider_for),
        lambda: graph_sender(params, account, provider_for),
        routes,
    )


def route_memory(runtime: Runtime) -> RouteMemory:
    return RouteMemory(runtime.machine_state_dir / ROUTES_FILE_NAME, lambda: dt.datetime.now(dt.timezone.utc))


def sent_lookup_factory(params: Parameters, provider_for: ProviderFactory | None) -> LookupFor:
    """Searches an account's mailbox (IMAP, or Graph where Graph reads) for an interrupted outbox mail."""
    protocol, _reason = resolve_mail_protocol(params)

    def lookup_for(account: MailboxAccount) -> SentLookup | None:
        if protocol is MailProtocol.GRAPH:
            if provider_for is None:
                return None
            from wicbox_bridge.adapters.graph import GraphSettings  # noqa: PLC0415
            from wicbox_bridge.adapters.graph_sent import GraphSentLookup  # noqa: PLC0415

            return GraphSentLookup(
                GraphSettings.from_parameters(params), provider_for(account, "graph"), account.mailbox
            )
        sign_in: SignIn
        if provider_for is not None:
            sign_in = OAuthSignIn(provider_for(account, "imap"))
        elif account.password:
            sign_in = PasswordSignIn(account.password)
        else:
            return None
        from wicbox_bridge.adapters.smtp_sent import ImapSentLookup  # noqa: PLC0415 - see the imports

        return ImapSentLookup(ImapSettings.from_parameters(params), account.mailbox, sign_in)

    return lookup_for


def smtp_login_probe(params: Parameters, provider_for: ProviderFactory | None) -> SmtpLoginProbe:
    """For ``wicbox check``: connect, TLS and AUTH as ``account`` would send, then QUIT."""

    from wicbox_bridge.adapters.smtp import Stage, StepReport  # noqa: PLC0415 - see the imports

    def probe(account: MailboxAccount) -> str:
        steps: list[StepReport] = []
        smtp_sender(params, account, provider_for, on_step=steps.append).verify_login()
        done = {step.stage: step.detail for step in steps if step.ok}
        return (
            f"signed in to {params.smtp.host}:{params.smtp.port} ({done.get(Stage.TLS, 'TLS')}) with "
            f"{done.get(Stage.AUTH, 'AUTH')}; nothing sent"
        )

    return probe
