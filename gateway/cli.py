"""The `gateway` command: serve, migrate, seed, token, export-schema, clients, documents,
customers."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.access_cli import add_access_commands, run_access_command
from gateway.json_logs import configure_logging
from gateway.log_redaction import install_log_redaction
from gateway.privacy_cli import add_privacy_commands, run_privacy_command
from gateway.reconciliation import add_reconcile_command, run_reconcile_command
from gateway.settings import Settings, load_settings

__all__ = ["main"]

logger = logging.getLogger("gateway.cli")

EXAMPLE_QUERY = (
    "{ customers(first: 2) { edges { node { id displayName ledgerAccounts(first: 3) "
    "{ edges { node { name balance { posted { amount currency } } } } } } } } }"
)


def _configure_logging(level: str, log_format: str = "text") -> None:
    configure_logging(level, log_format)  # gateway.json_logs: JSON lines or text
    # Every record (ours, uvicorn's, SQLAlchemy's) has its secrets masked before any handler.
    install_log_redaction()


def _ensure_sqlite_folder(settings: Settings) -> None:
    if settings.is_sqlite:
        _, _, path = settings.database_url.partition(":///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


async def _migrate(settings: Settings) -> None:
    from adapters.ledger.engine import create_ledger_engine
    from adapters.migrate import upgrade_to_head

    _ensure_sqlite_folder(settings)
    engine = create_ledger_engine(settings.database_url)
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()


async def _seed(settings: Settings, customers: int, seed: int, if_empty: bool) -> None:
    from adapters.ledger.engine import create_ledger_engine
    from adapters.ledger.seed import is_empty, seed_ledger

    engine = create_ledger_engine(settings.database_url)
    try:
        if if_empty and not await is_empty(engine):
            logger.info("database already holds data; not seeding")
            return
        summary = await seed_ledger(engine, customers=customers, seed=seed)
        logger.info("seeded %s", summary)
        if settings.providers.is_sandbox:
            await _link_sandbox_providers(settings, engine, summary.tenant_id)
    finally:
        await engine.dispose()


# Linking a bank item costs two statements; the benchmark's 10,000 customers need only a few.
_MAX_SEEDED_BANK_LINKS = 1000


async def _link_sandbox_providers(settings: Settings, engine: AsyncEngine, tenant_id: int) -> None:
    """Link the seeded customers to the provider sandboxes (card customers, bank items)."""
    from adapters.banking.sandbox_seed import link_seeded_customers
    from adapters.cards.sandbox_seed import (
        link_seeded_card_customers,
        seed_adyen_sandbox_payments,
    )
    from adapters.crypto import SecretBox

    cards = await link_seeded_card_customers(engine, tenant_id)
    adyen = await seed_adyen_sandbox_payments(engine, tenant_id)
    box = SecretBox.from_keyring(settings.providers.secret_keyring.reveal())
    banks = await link_seeded_customers(engine, tenant_id, box, limit=_MAX_SEEDED_BANK_LINKS)
    logger.info("linked %d card customers (%d also at Adyen) and %d bank items to the sandboxes",
                cards, adyen, banks)  # fmt: skip


async def _sync_bank(settings: Settings, tenant: int | None, customer: int | None) -> int:
    """Sync bank transactions of the matching links now; 1 when some link failed."""
    from adapters.banking.sync import BankSyncFailure, sync_bank_links
    from gateway.lifespan import open_services

    async with open_services(settings) as services:
        runtime = services.providers
        if runtime is None or runtime.secret_box is None:
            logger.error("no banking provider is configured")
            return 1
        try:
            results = await sync_bank_links(
                services.engine,
                runtime.banking_providers,
                runtime.secret_box,
                tenant_id=tenant,
                customer_ids=None if customer is None else [customer],
            )
        except BankSyncFailure as failure:
            logger.error("%d bank links failed to sync", len(failure.failures))
            return 1
    logger.info("synced %d bank links", len(results))
    return 0


def _serve(settings: Settings, *, migrate: bool, seed_demo: int, workers: int = 1) -> int:
    from gateway.serving import WorkersRefused, check_workers, run_uvicorn

    try:
        warnings = check_workers(settings, workers)
    except WorkersRefused as refusal:
        print(f"error: {refusal}", file=sys.stderr)  # noqa: T201
        return 2
    for warning in warnings:
        logger.warning("%s", warning)
    if migrate:
        asyncio.run(_migrate(settings))
    if seed_demo:
        asyncio.run(_seed(settings, seed_demo, 42, if_empty=True))
    url = f"http://{settings.host}:{settings.port}/graphql"
    if settings.is_development:
        print(f"\nfinance-gateway (development) on {url}\n"  # noqa: T201
              "Open it in a browser for GraphiQL (the token below is pre-filled there); "
              "`gateway token --tenant N` mints others.\n")  # fmt: skip
        _print_example(settings, url)
    run_uvicorn(settings, workers=workers)
    return 0


def _print_example(settings: Settings, url: str) -> None:
    token = asyncio.run(_development_token(settings))
    if token is None:
        return
    query = EXAMPLE_QUERY
    print(  # noqa: T201
        f"Development token (tenant of the demo data):\n{token}\n\nTry:\n"
        f"curl -s {url} -H 'Authorization: Bearer {token}' "
        f"-H 'Content-Type: application/json' -d '{{\"query\": \"{query}\"}}'\n"
    )


async def _development_token(settings: Settings) -> str | None:
    from gateway.lifespan import open_services

    async with open_services(settings) as services:
        return services.development_token


def _token(
    settings: Settings,
    tenant: int,
    scopes: list[str],
    subject: str,
    hours: int,
    client: int | None = None,
) -> str:
    import datetime as dt

    from gateway.auth import mint_token

    return mint_token(
        settings,
        tenant_id=tenant,
        scopes=scopes,
        subject=subject,
        ttl=dt.timedelta(hours=hours),
        client_id=client,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the GraphQL endpoint (uvicorn)")
    serve.add_argument("--migrate", action="store_true", help="migrate the database first")
    serve.add_argument(
        "--seed-demo",
        type=int,
        default=0,
        metavar="N",
        help="seed N demo customers first when the database is empty",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes (PostgreSQL only; each opens its own pools; see README)",
    )

    commands.add_parser("migrate", help="bring the database schema up to date")

    seed = commands.add_parser("seed", help="seed deterministic demo/benchmark data")
    seed.add_argument("--customers", type=int, default=100)
    seed.add_argument("--seed", type=int, default=42, help="random seed (same seed, same data)")
    seed.add_argument("--if-empty", action="store_true", help="only when no tenant exists yet")

    sync = commands.add_parser("sync-bank", help="sync bank transactions from the provider now")
    sync.add_argument("--tenant", type=int, help="only this tenant's links")
    sync.add_argument("--customer", type=int, help="only this customer's links")

    token = commands.add_parser("token", help="print a signed bearer token (JWT)")
    token.add_argument("--tenant", type=int, required=True)
    token.add_argument(
        "--scopes", default="ledger:read", help="comma-separated, e.g. ledger:read,ledger:write"
    )
    token.add_argument("--subject", default="developer")
    token.add_argument("--hours", type=int, default=12)
    token.add_argument(
        "--client",
        type=int,
        help="tie the token to this registered API client (claim client_id): its kind, policy "
        "and scopes then bound the token",
    )

    add_reconcile_command(commands)
    commands.add_parser("export-schema", help="print the schema (SDL) to stdout")
    add_access_commands(commands)
    add_privacy_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        # A server never guesses its environment: development defaults would sign tokens
        # for any tenant with the repository's secret.
        settings = load_settings(require_environment=args.command == "serve")
    except ValueError as error:
        print(f"configuration error: {error}", file=sys.stderr)  # noqa: T201
        return 2
    _configure_logging(settings.log_level, settings.telemetry.log_format)
    if args.command == "serve":
        return _serve(settings, migrate=args.migrate, seed_demo=args.seed_demo,
                      workers=args.workers)  # fmt: skip
    if args.command == "migrate":
        asyncio.run(_migrate(settings))
    elif args.command == "seed":
        asyncio.run(_seed(settings, args.customers, args.seed, if_empty=args.if_empty))
    elif args.command == "sync-bank":
        return asyncio.run(_sync_bank(settings, args.tenant, args.customer))
    elif args.command == "reconcile":
        return asyncio.run(run_reconcile_command(args, settings))
    elif args.command == "token":
        scopes = [scope.strip() for scope in args.scopes.split(",") if scope.strip()]
        try:
            token = _token(settings, args.tenant, scopes, args.subject, args.hours, args.client)
            print(token)  # noqa: T201
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)  # noqa: T201
            return 2
    elif args.command in ("clients", "documents"):
        return asyncio.run(run_access_command(args, settings))
    elif args.command == "customers":
        return asyncio.run(run_privacy_command(args, settings))
    elif args.command == "export-schema":
        from resolvers.schema import schema

        print(schema.as_str())  # noqa: T201
    return 0
