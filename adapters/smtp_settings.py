"""The SMTP sender's settings: one frozen object, validated when it is built."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wicbox_bridge.config.params import Endpoint, Parameters
from wicbox_bridge.errors import ConfigurationError

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_TRANSIENT_RETRIES = 2
DEFAULT_RETRY_BACKOFF_S = 2.0


@dataclass(frozen=True)
class SmtpSettings:
    """How to reach the submission server and how often to repeat a transient (4xx) answer.

    A ``4xx`` answer is repeated ``transient_retries`` times, waiting ``retry_backoff_s``, then
    twice as long each time; after that the caller (the outbox) schedules a later attempt.
    ``local_hostname`` is the EHLO name (default: this computer's name).
    """

    endpoint: Endpoint
    ca_bundle: Path | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    transient_retries: int = DEFAULT_TRANSIENT_RETRIES
    retry_backoff_s: float = DEFAULT_RETRY_BACKOFF_S
    local_hostname: str | None = None

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ConfigurationError(
                f"SmtpSettings.timeout_s is {self.timeout_s}.", fix="use a positive number of seconds"
            )
        if self.transient_retries < 0 or self.retry_backoff_s < 0:
            raise ConfigurationError(
                "SmtpSettings.transient_retries and retry_backoff_s must not be negative.",
                fix="use 0 (no retry) or a positive number",
            )

    @classmethod
    def from_parameters(
        cls,
        params: Parameters,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transient_retries: int = DEFAULT_TRANSIENT_RETRIES,
        retry_backoff_s: float = DEFAULT_RETRY_BACKOFF_S,
    ) -> SmtpSettings:
        return cls(
            endpoint=params.smtp,
            ca_bundle=params.ca_bundle,
            timeout_s=timeout_s,
            transient_retries=transient_retries,
            retry_backoff_s=retry_backoff_s,
        )
