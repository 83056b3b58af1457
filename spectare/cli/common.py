"""Helpers the CLI commands share."""

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from spectare.core.bus import connected
from spectare.core.config import Settings, load_settings
from spectare.core.indexclient import IndexClient

T = TypeVar("T")


def with_bus(work: Callable[[Any, Settings], Awaitable[T]], name: str = "cli") -> T:
    """Run `work(js, settings)` against the configured NATS, connecting and draining around it."""

    async def run() -> T:
        settings = load_settings()
        async with connected(settings, name) as nc:
            return await work(nc.jetstream(), settings)

    return asyncio.run(run())


def with_index(ask: Callable[[Any], Awaitable[T]], timeout_s: float = 60.0) -> T:
    """Run `ask(index_client)` against the indexer's query service (see `spectare.core.indexclient`)."""

    async def run() -> T:
        settings = load_settings()
        async with connected(settings, "cli-index") as nc:
            return await ask(IndexClient(nc, settings, timeout_s=timeout_s))

    return asyncio.run(run())


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    for row in [headers, *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
