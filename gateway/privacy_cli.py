"""`gateway customers export|erase`: data-subject requests from the command line.

    gateway customers export --tenant T --customer N [--output FILE]
    gateway customers erase  --tenant T --customer N [--requested-by WHO]

Exit status: 0 done; 2 refused (no such customer in that tenant; nothing was touched); 3 the
customer was erased here but a provider could not revoke its access upstream (the audit event
records it; revoke it at the provider by hand); 4 erased, but a cache could not be purged.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the parser is built on every CLI start; the rest loads when used
    from gateway.settings import Settings

__all__ = ["add_privacy_commands", "run_privacy_command"]


def add_privacy_commands(commands: Any) -> None:
    """Add the `customers` command group to the CLI's subparsers."""
    group = commands.add_parser("customers", help="data-subject requests: export, erase")
    actions = group.add_subparsers(dest="action", required=True)
    export = actions.add_parser(
        "export", help="write everything held about a customer as one JSON document"
    )
    erase = actions.add_parser(
        "erase", help="erase a customer's personal data (the ledger keeps its amounts)"
    )
    for action in (export, erase):
        action.add_argument("--tenant", type=int, required=True)
        action.add_argument("--customer", type=int, required=True)
    export.add_argument(
        "--output", type=Path, help="write to FILE (created readable by its owner only)"
    )
    erase.add_argument(
        "--requested-by",
        default="cli",
        help="who asked for the erasure, recorded as the audit event's subject",
    )


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


async def _export(args: argparse.Namespace, settings: Settings) -> int:
    from adapters.privacy.export import export_customer
    from gateway.lifespan import open_services

    async with open_services(settings) as services:
        processors = None if services.providers is None else services.providers.card_processors
        document = await export_customer(
            services.engine, args.tenant, args.customer, card_processors=processors
        )
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        _write_private(args.output, text)
    return 0


async def _erase(args: argparse.Namespace, settings: Settings) -> int:
    from adapters.audit.records import Actor
    from adapters.cache import MemoryCache
    from gateway.lifespan import open_services
    from gateway.privacy import erase_and_purge

    actor = Actor(
        tenant_id=args.tenant,
        subject=args.requested_by,
        client_id=None,
        request_id=f"cli-{uuid.uuid4().hex[:16]}",
        operation_name="customers erase",
    )
    async with open_services(settings) as services:
        # Without Redis each server process keeps its own cache, which this process cannot
        # reach: the data version bump makes their entries unservable; they age out.
        shared = None if isinstance(services.cache, MemoryCache) else services.cache
        report = await erase_and_purge(
            services.engine, args.tenant, args.customer, actor=actor,
            providers=services.providers, response_cache=shared,
        )  # fmt: skip
    erasure = report.erasure
    state = "was already erased" if erasure.already_erased else "erased"
    _out(f"customer {erasure.customer_id} of tenant {erasure.tenant_id} {state}")
    for link in erasure.links:
        detail = f" ({link.error})" if link.error else ""
        _out(f"  provider link {link.link_id} ({link.provider}, {link.kind}): revoked here; "
             f"upstream {link.upstream}{detail}")  # fmt: skip
    _out(f"  cache entries purged: {report.provider_entries_purged} provider, "
         f"{report.responses_purged} responses")  # fmt: skip
    if any(link.upstream == "failed" for link in erasure.links):
        sys.stderr.write("warning: a provider could not revoke access upstream; see above\n")
        return 3
    return 0


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


async def run_privacy_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run `customers export|erase` (exit statuses: see the module docstring)."""
    from redis.exceptions import RedisError

    from adapters.errors import NotFound

    try:
        if args.action == "export":
            return await _export(args, settings)
        return await _erase(args, settings)
    except NotFound as error:
        sys.stderr.write(f"error: {error.message}\n")
        return 2
    except RedisError as error:  # raised by the purge, after the erasure committed
        sys.stderr.write(
            f"error: erased, but the cache could not be purged ({type(error).__name__}); "
            "run the erasure again once Redis answers\n"
        )
        return 4
