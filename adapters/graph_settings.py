"""The Graph adapter's settings: one frozen object, validated when it is built."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wicbox_bridge.adapters.settings_checks import (
    check_positive_seconds,
    check_throttle_wait,
    checked_folder_keys,
    failed_folder_clash,
)
from wicbox_bridge.config import params as names
from wicbox_bridge.config.params import AfterProcess, Parameters
from wicbox_bridge.errors import ConfigurationError

API_VERSION = "v1.0"
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_READ_TIMEOUT_S = 60.0
DEFAULT_MAX_THROTTLE_WAIT_S = 120.0
DEFAULT_PAGE_SIZE = 1000  # one listing request per run in most cases (the cap is at most 1000)
MAX_PAGE_SIZE = 1000  # Graph's largest $top for messages
MAX_CONCURRENCY = 4  # Exchange Online: 4 concurrent requests per app and mailbox
MAX_BATCH = 20  # Graph's JSON batching limit


@dataclass(frozen=True)
class GraphSettings:
    """Where Microsoft Graph is, how to reach it, and what to do with the mails read there.

    ``page_size`` is the ``$top`` of one listing request; ``concurrency`` the number of ``$value``
    downloads in flight per mailbox (never above Exchange's 4); ``batch_size`` the requests per
    ``$batch`` (never above Graph's 20). ``max_throttle_wait_s`` bounds the total time one request
    waits out 429/503 replies before the run gives up on the mailbox.
    """

    base_url: str = names.DEFAULT_GRAPH_URL
    ca_bundle: Path | None = None
    source_folder: str = names.DEFAULT_FOLDER
    processed_folder: str = names.DEFAULT_PROCESSED_FOLDER
    failed_folder: str = names.DEFAULT_FAILED_FOLDER
    after_process: AfterProcess = AfterProcess.MOVE
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    max_throttle_wait_s: float = DEFAULT_MAX_THROTTLE_WAIT_S
    page_size: int = DEFAULT_PAGE_SIZE
    concurrency: int = MAX_CONCURRENCY
    batch_size: int = MAX_BATCH

    def __post_init__(self) -> None:
        _check_folders(self)
        _check_limits(self)

    @property
    def api_root(self) -> str:
        """``https://graph.microsoft.com/v1.0``."""
        return f"{self.base_url.rstrip('/')}/{API_VERSION}"

    @classmethod
    def from_parameters(
        cls,
        params: Parameters,
        *,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        max_throttle_wait_s: float = DEFAULT_MAX_THROTTLE_WAIT_S,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> GraphSettings:
        """Settings from the WICMan parameters plus the tuning values that are not parameters."""
        return cls(
            base_url=params.graph_url,
            ca_bundle=params.ca_bundle,
            source_folder=params.source_folder,
            processed_folder=params.processed_folder,
            failed_folder=params.failed_folder,
            after_process=params.after_process,
            read_timeout_s=read_timeout_s,
            max_throttle_wait_s=max_throttle_wait_s,
            page_size=page_size,
        )


def _check_folders(settings: GraphSettings) -> None:
    source, processed, failed = checked_folder_keys(
        settings.source_folder, settings.processed_folder, settings.failed_folder, settings.after_process
    )
    if failed in (source, processed):
        raise failed_folder_clash(
            "must differ from the source and processed folders: mails that could not be filed must stay apart"
        )


def _check_limits(settings: GraphSettings) -> None:
    limits = (
        ("page_size", settings.page_size, MAX_PAGE_SIZE),
        ("concurrency", settings.concurrency, MAX_CONCURRENCY),
        ("batch_size", settings.batch_size, MAX_BATCH),
    )
    for name, value, highest in limits:
        if not 1 <= value <= highest:
            raise ConfigurationError(f"GraphSettings.{name} is {value}.", fix=f"use 1 to {highest}")
    check_positive_seconds("GraphSettings", "connect_timeout_s", settings.connect_timeout_s)
    check_positive_seconds("GraphSettings", "read_timeout_s", settings.read_timeout_s)
    check_throttle_wait("GraphSettings", settings.max_throttle_wait_s)
