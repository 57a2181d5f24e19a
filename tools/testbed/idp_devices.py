"""The device authorization grant, as Microsoft Entra ID runs it.

``POST /{tenant}/oauth2/v2.0/devicecode`` (``client_id``, ``scope``) answers a ``device_code``, a
``user_code`` to type at ``https://microsoft.com/devicelogin``, ``expires_in`` (900 s) and the
polling ``interval`` (5 s). The client then polls the token endpoint with ``grant_type =
urn:ietf:params:oauth:grant-type:device_code`` and gets ``authorization_pending`` until the user
signed in, ``slow_down`` when it polls faster than the interval, ``authorization_declined`` when
the user refused, ``expired_token`` once the code is 15 minutes old, and the tokens once approved.
Tests play the user: :meth:`DeviceCodes.approve` (signed in, multi-factor authentication satisfied)
and :meth:`DeviceCodes.decline`.
"""

from __future__ import annotations

import secrets
import string
import threading
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from tools.testbed.idp_errors import AadError

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
VERIFICATION_URI = "https://microsoft.com/devicelogin"
LIFETIME = timedelta(seconds=900)
INTERVAL = 5
_USER_CODE_ALPHABET = string.ascii_uppercase + string.digits

DeviceState = Literal["pending", "approved", "declined", "redeemed"]


@dataclass(frozen=True)
class DeviceCode:
    """One device authorization: what was asked, by whom, and how far the user got."""

    device_code: str = field(repr=False)  # the client's secret handle to poll with
    user_code: str
    client_id: str
    tenant_id: str
    scope: str
    expires_at: datetime
    interval: int = INTERVAL
    state: DeviceState = "pending"
    upn: str | None = None  # who signed in (approved)
    last_poll: datetime | None = None

    def reply(self) -> dict[str, object]:
        seconds = int(LIFETIME.total_seconds())
        return {
            "user_code": self.user_code,
            "device_code": self.device_code,
            "verification_uri": VERIFICATION_URI,
            "expires_in": seconds,
            "interval": self.interval,
            "message": f"To sign in, use a web browser to open the page {VERIFICATION_URI} and enter the "
            f"code {self.user_code} to authenticate.",
        }


class DeviceCodes:
    """Thread-safe: the emulator's request threads poll while a test approves or declines."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: dict[str, DeviceCode] = {}  # by device_code
        self._auto_approve: str | None = None

    def issue(self, client_id: str, tenant_id: str, scope: str, now: datetime) -> DeviceCode:
        user_code = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(9))
        code = DeviceCode(
            device_code=secrets.token_urlsafe(48),
            user_code=user_code,
            client_id=client_id.lower(),
            tenant_id=tenant_id,
            scope=scope,
            expires_at=now + LIFETIME,
        )
        with self._lock:
            if self._auto_approve is not None:
                code = replace(code, state="approved", upn=self._auto_approve)
                self._auto_approve = None
            self._codes[code.device_code] = code
        return code

    def latest(self) -> DeviceCode | None:
        with self._lock:
            return list(self._codes.values())[-1] if self._codes else None

    def approve(self, user_code: str, upn: str) -> None:
        """The user typed the code, signed in as ``upn`` (MFA satisfied) and accepted."""
        self._set(user_code, "approved", upn)

    def decline(self, user_code: str) -> None:
        """The user typed the code and chose not to sign in."""
        self._set(user_code, "declined", None)

    def approve_next(self, upn: str) -> None:
        """The next code issued is approved as ``upn`` at once (a user who is quick to sign in)."""
        with self._lock:
            self._auto_approve = upn.lower()

    def poll(self, device_code: str, client_id: str, now: datetime) -> DeviceCode:
        """The code when it is approved (then redeemed); otherwise the error Entra ID answers."""
        with self._lock:
            code = self._codes.get(device_code)
            if code is None or code.client_id != client_id.lower() or code.state == "redeemed":
                raise _invalid_grant()
            if now >= code.expires_at:
                raise _expired()
            if code.state == "declined":
                raise _declined()
            if code.state == "approved":
                self._codes[device_code] = replace(code, state="redeemed", last_poll=now)
                return code
            too_soon = code.last_poll is not None and now - code.last_poll < timedelta(seconds=code.interval)
            self._codes[device_code] = replace(code, last_poll=now)
            raise _slow_down() if too_soon else _pending()

    def _set(self, user_code: str, state: DeviceState, upn: str | None) -> None:
        with self._lock:
            for key, code in self._codes.items():
                if code.user_code == user_code.upper():
                    self._codes[key] = replace(code, state=state, upn=upn.lower() if upn else None)
                    return
        raise KeyError(f"no device code with user code {user_code}")


def _pending() -> AadError:
    return AadError(
        70016,
        "authorization_pending",
        "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
    )


def _slow_down() -> AadError:
    return AadError(70016, "slow_down", "OAuth 2.0 device flow error. Polling too fast: slow down.")


def _declined() -> AadError:
    return AadError(70000, "authorization_declined", "The end user denied the authorization request.")


def _expired() -> AadError:
    return AadError(
        70020,
        "expired_token",
        "The provided value for the input parameter 'device_code' is not valid. This device code has "
        "expired.",
    )


def _invalid_grant() -> AadError:
    return AadError(70000, "invalid_grant", "Provided grant is invalid or malformed.")
