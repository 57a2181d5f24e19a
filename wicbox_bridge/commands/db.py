"""``wicbox db init|upgrade|version``: the schema of wicbox-bridge's tables in the WIC database."""

from __future__ import annotations

import click

from wicbox_bridge.commands import examples, pass_runtime
from wicbox_bridge.helpformat import WholeSummaryGroup
from wicbox_bridge.runtime import Runtime
from wicbox_bridge.store.schema import LATEST_VERSION, init_schema, schema_version, upgrade_schema


@click.group(
    "db",
    cls=WholeSummaryGroup,
    epilog=examples(
        ("wicbox db init", "first install: create the tables"),
        ("wicbox db version", "the schema version recorded and the latest known"),
    ),
)
def db_group() -> None:
    """Create or upgrade wicbox-bridge's tables in the WIC database (idempotent)."""


@db_group.command(
    "init",
    epilog=examples(
        ("wicbox db init", "the database of the configuration found"),
        ("wicbox --config D:\\WIC\\WicGlobal.config db init", "that configuration's database"),
    ),
)
@pass_runtime
def db_init(runtime: Runtime) -> int:
    """Create the tables that are missing (WIC's own tables are never changed beyond adding columns)."""
    store = runtime.open_store(create=True)
    try:
        applied = init_schema(store)
        version = schema_version(store)
    finally:
        store.close()
    where = runtime.config.database.describe()
    if applied:
        click.echo(f"Schema initialised at version {version} in {where} (applied {_versions(applied)}).")
    else:
        click.echo(f"Schema already at version {version} in {where}; nothing to do.")
    return 0


@db_group.command("upgrade", epilog=examples(("wicbox db upgrade", "after installing a new release")))
@pass_runtime
def db_upgrade(runtime: Runtime) -> int:
    """Apply the schema scripts newer than the database's recorded version."""
    store = runtime.open_store()
    try:
        applied = upgrade_schema(store)
        version = schema_version(store)
    finally:
        store.close()
    if applied:
        click.echo(f"Upgraded to schema version {version} (applied {_versions(applied)}).")
    else:
        click.echo(f"Schema already at version {version} (latest {LATEST_VERSION}); nothing to do.")
    return 0


@db_group.command("version", epilog=examples(("wicbox db version", "")))
@pass_runtime
def db_version(runtime: Runtime) -> int:
    """Print the schema version recorded in the database and the latest this release knows."""
    store = runtime.open_store()
    try:
        version = schema_version(store)
    finally:
        store.close()
    shown = "none (run `wicbox db init`)" if version is None else str(version)
    click.echo(f"database: {runtime.config.database.describe()}")
    click.echo(f"schema version: {shown}; latest known: {LATEST_VERSION}")
    return 0


def _versions(applied: list[int]) -> str:
    return ", ".join(str(version) for version in applied)
