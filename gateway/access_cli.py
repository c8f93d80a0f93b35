"""`gateway clients ...` and `gateway documents ...`: API clients and their trusted documents.

A key is printed once, by `create` and `rotate-key`; only its hash is kept.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the parser is built on every CLI start; the rest loads when used
    from adapters.access.clients import ApiClient, ClientStore
    from adapters.access.documents import SqlDocumentStore
    from gateway.settings import Settings

__all__ = ["add_access_commands", "run_access_command"]

_POLICY_FLAGS = ("apq_enabled", "allow_text", "safelist_required", "introspection")


def add_access_commands(commands: Any) -> None:
    """Add the `clients` and `documents` command groups to the CLI's subparsers."""
    clients = commands.add_parser("clients", help="API clients: create, list, revoke, rotate-key")
    actions = clients.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a client and print its key (once)")
    create.add_argument("--tenant", type=int, required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--kind", choices=["first_party", "partner", "analyst"], required=True)
    create.add_argument("--scopes", default="ledger:read", help="comma-separated")
    create.add_argument("--test-key", action="store_true", help="issue an fgw_test_ key")
    create.add_argument(
        "--rate-limit", type=int, default=None, help="rate limit: cost points per minute"
    )
    create.add_argument("--max-cost", type=int, default=None, help="most one operation may cost")
    for flag in _POLICY_FLAGS:
        create.add_argument(
            "--" + flag.replace("_", "-"),
            action=argparse.BooleanOptionalAction,
            default=None,
            help="override the kind's default operation policy",
        )
    listing = actions.add_parser("list", help="list clients (never their keys)")
    listing.add_argument("--tenant", type=int, default=None)
    revoke = actions.add_parser("revoke", help="revoke a client: its key fails at once")
    revoke.add_argument("client_id", type=int)
    rotate = actions.add_parser("rotate-key", help="replace a client's key; the old one fails")
    rotate.add_argument("client_id", type=int)
    change = actions.add_parser("update", help="set a client's budgets ('default': its kind's)")
    change.add_argument("client_id", type=int)
    change.add_argument("--max-cost", default=None, help="most one operation may cost")
    change.add_argument("--rate-limit", default=None, help="cost points per minute")

    documents = commands.add_parser("documents", help="trusted documents (safelist) per client")
    doc_actions = documents.add_subparsers(dest="action", required=True)
    register = doc_actions.add_parser(
        "register", help="register a manifest (Apollo persisted query manifest or Relay map)"
    )
    register.add_argument("--client", type=int, required=True)
    register.add_argument("manifest", type=Path)
    doc_list = doc_actions.add_parser("list", help="list a client's documents")
    doc_list.add_argument("--client", type=int, required=True)


def _line(client: ApiClient) -> str:
    policy = ",".join(flag for flag in _POLICY_FLAGS if getattr(client.policy, flag))
    state = f"revoked {client.revoked_at:%Y-%m-%d %H:%M}" if client.revoked_at else "active"
    return (
        f"{client.id}\ttenant={client.tenant_id}\t{client.kind}\t{client.name}\t"
        f"{client.key_prefix}...\tscopes={','.join(sorted(client.scopes))}\t"
        f"policy={policy or '-'}\tmax_cost={client.max_cost or 'default'}\t"
        f"rate_limit={client.rate_limit or 'default'}\t{state}"
    )


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


async def _clients(args: argparse.Namespace, store: ClientStore) -> int:
    from adapters.access.clients import DEFAULT_POLICIES
    from resolvers.principal import SCOPES

    if args.action == "create":
        scopes = [scope.strip() for scope in args.scopes.split(",") if scope.strip()]
        unknown = set(scopes) - SCOPES.keys()
        if unknown:
            sys.stderr.write(f"error: unknown scopes: {', '.join(sorted(unknown))}\n")
            return 2
        overrides = {f: getattr(args, f) for f in _POLICY_FLAGS if getattr(args, f) is not None}
        policy = dataclasses.replace(DEFAULT_POLICIES[args.kind], **overrides)
        issued = await store.create(
            tenant_id=args.tenant, name=args.name, kind=args.kind, scopes=scopes, policy=policy,
            rate_limit=args.rate_limit, environment="test" if args.test_key else "live",
            max_cost=args.max_cost,
        )  # fmt: skip
        _out(_line(issued.client))
        _out(f"key (shown once, store it now): {issued.key}")
    elif args.action == "list":
        for client in await store.list(args.tenant):
            _out(_line(client))
    elif args.action == "revoke":
        _out(_line(await store.revoke(args.client_id)))
    elif args.action == "update":
        values: dict[str, int] = {}
        clear = set()
        for name in ("max_cost", "rate_limit"):
            given = getattr(args, name)
            if given == "default":
                clear.add(name)
            elif given is not None:
                try:
                    values[name] = int(given)
                except ValueError:
                    sys.stderr.write(f"error: --{name.replace('_', '-')} must be a number\n")
                    return 2
        client = await store.update_limits(args.client_id, clear=frozenset(clear), **values)
        _out(_line(client))
    elif args.action == "rotate-key":
        issued = await store.rotate_key(args.client_id)
        _out(_line(issued.client))
        _out(f"new key (shown once, store it now): {issued.key}")
    return 0


async def _documents(
    args: argparse.Namespace, store: SqlDocumentStore, clients: ClientStore, settings: Settings
) -> int:
    client = await clients.get(args.client)
    if client is None:
        sys.stderr.write(f"error: no API client {args.client}\n")
        return 2
    if args.action == "list":
        for document in await store.list(client.id):
            _out(
                f"{document.document_id}\t{document.operation_type}\t{document.name or '-'}\t"
                f"cost={document.cost if document.cost is not None else '-'}"
            )
        return 0
    from gateway.cost import CostAnalyzer, CostTooExpensive, price_documents
    from gateway.persisted_documents import ManifestError, parse_manifest
    from resolvers.principal import Principal
    from resolvers.schema import limit_rules, schema

    try:
        documents = parse_manifest(args.manifest.read_bytes(), schema._schema)
        # The cost of each document is computed once, here, and stored with it.
        analyzer = CostAnalyzer(
            schema._schema, settings.cost, max_page_size=settings.max_page_size,
            rules=limit_rules(max_depth=settings.max_query_depth, max_aliases=settings.max_aliases),
        )  # fmt: skip
        budget = settings.cost.budget(Principal.of_client(client))
        documents = price_documents(analyzer, documents, budget)
    except (OSError, ManifestError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    except CostTooExpensive as error:
        sys.stderr.write(f"error: {error.message} (COST_ESTIMATED_TOO_EXPENSIVE)\n")
        return 2
    summary = await store.register(client.id, documents)
    _out(f"registered {summary.added} new, {summary.unchanged} already present")
    return 0


async def run_access_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run `clients ...` or `documents ...`; exit status 2 on a refused request."""
    from adapters.access.clients import ClientStore
    from adapters.access.documents import SqlDocumentStore
    from adapters.errors import AdapterError
    from adapters.ledger.engine import create_ledger_engine

    engine = create_ledger_engine(settings.database_url)
    clients = ClientStore(engine, pepper=settings.api_key_pepper.reveal())
    try:
        if args.command == "clients":
            return await _clients(args, clients)
        return await _documents(args, SqlDocumentStore(engine), clients, settings)
    except AdapterError as error:
        sys.stderr.write(f"error: {error.message}\n")
        return 2
    finally:
        await engine.dispose()
