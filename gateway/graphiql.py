"""GraphiQL for analysts: the page at GET /graphql and its assets, served by the gateway itself.

The scripts and styles come from `assets_dir` (filled by `python -m gateway.graphiql_assets`),
never from a CDN. Without them the page says so in plain HTML instead of hanging on "Loading".
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import secrets
from functools import cache
from importlib.resources import files
from pathlib import Path
from string import Template
from urllib.parse import parse_qs, quote

from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from gateway.graphiql_assets import read_manifest

__all__ = [
    "ASSETS_PATH",
    "INSTALL_COMMAND",
    "STORAGE_VERSION",
    "graphiql_routes",
    "render_graphiql_page",
    "storage_prefix",
]

ASSETS_PATH = "/graphiql/assets"
INSTALL_COMMAND = "python -m gateway.graphiql_assets"
# GraphiQL keeps its tabs, queries and operation names in the browser's localStorage. The page
# gives it a namespace of its own, versioned: raise STORAGE_VERSION when what the page stores
# changes meaning; the default tabs' digest is part of the namespace too, so new example
# operations are not hidden behind the tabs a browser saved from an older page.
STORAGE_VERSION = 2

_IMMUTABLE = "public, max-age=31536000, immutable"
_MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
# GraphiQL's stylesheet embeds its fonts and icons as data: URLs. Its dialogs insert a
# <style> element that cannot be given a nonce from outside the bundle, so styles (never
# scripts) may be inline.
_PAGE_POLICY = (
    "default-src 'none'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
    "font-src 'self' data:; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_MISSING_POLICY = (
    "default-src 'none'; style-src 'nonce-{nonce}'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_MISSING_ASSETS_PAGE = Template("""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="robots" content="noindex">
  <title>GraphiQL is not installed · finance gateway</title>
  <style nonce="$nonce">
    body { max-width: 42rem; margin: 3rem auto; padding: 0 1rem; font: 16px/1.5 sans-serif; }
  </style>
</head>
<body>
  <h1>GraphiQL's assets are not installed</h1>
  <p>This gateway serves GraphiQL's scripts and styles itself, from its own folder of
    assets, and that folder does not hold them yet.</p>
  <p>To install them, run <code>$install_command</code> (or <code>make install</code>) from
    the repository root on a machine with Node.js and npm, then reload this page.</p>
  <p>The GraphQL endpoint <code>$endpoint</code> still works: send queries to it as
    JSON POST requests.</p>
</body>
</html>
""")


class _AssetFiles(StaticFiles):
    """Static files with a JavaScript-safe content type and long caching for versioned URLs."""

    async def check_config(self) -> None:
        # The folder may be installed after the gateway starts: until then every asset is a
        # 404, where StaticFiles would answer 500 for good.
        return

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        media_type = _MEDIA_TYPES.get(Path(full_path).suffix)
        if media_type is not None and response.status_code == 200:
            response.headers["content-type"] = media_type
        # The page adds ?v=<sha256> to every URL, so a versioned URL never changes content.
        is_versioned = "v" in parse_qs(scope.get("query_string", b"").decode("latin-1"))
        response.headers["cache-control"] = _IMMUTABLE if is_versioned else "no-cache"
        response.headers["x-content-type-options"] = "nosniff"
        return response


def graphiql_routes(assets_dir: Path) -> list[BaseRoute]:
    """Routes serving the installed assets under ASSETS_PATH; a missing folder answers 404."""
    return [
        Mount(
            ASSETS_PATH,
            app=_AssetFiles(directory=assets_dir, check_dir=False),
            name="graphiql_assets",
        )
    ]


def render_graphiql_page(
    *,
    assets_dir: Path,
    endpoint: str,
    default_headers: dict[str, str] | None,
    example_operations: list[tuple[str, str]],
) -> HTMLResponse:
    """GraphiQL against `endpoint`, or a plain page saying its assets are missing.

    `default_headers` pre-fill the headers editor (for example a development token);
    `example_operations` are (name, document) pairs, one tab each. Every value is escaped
    for the HTML and script it lands in. The page is never cached, since it may hold a token.
    """
    nonce = secrets.token_urlsafe(18)
    headers = {"cache-control": "no-store", "x-content-type-options": "nosniff"}
    installed = read_manifest(assets_dir)
    if installed is None:
        headers["content-security-policy"] = _MISSING_POLICY.format(nonce=nonce)
        body = _MISSING_ASSETS_PAGE.substitute(
            nonce=nonce,
            install_command=html.escape(INSTALL_COMMAND),
            endpoint=html.escape(endpoint),
        )
        return HTMLResponse(body, headers=headers)

    def url(role: str) -> str:
        name = quote(installed.names[role])
        return html.escape(f"{ASSETS_PATH}/{name}?v={installed.digests[role][:16]}")

    tabs = [{"query": _tab_query(name, text)} for name, text in example_operations]
    config = {
        "endpoint": endpoint,
        "installCommand": INSTALL_COMMAND,
        "headers": json.dumps(default_headers, indent=2) if default_headers else "",
        "tabs": tabs,
        "storagePrefix": storage_prefix(tabs),
    }
    headers["content-security-policy"] = _PAGE_POLICY.format(nonce=nonce)
    body = _page_template().substitute(
        nonce=nonce,
        config=_script_json(config),
        react=url("react"),
        react_dom=url("react-dom"),
        graphiql_js=url("graphiql-js"),
        graphiql_css=url("graphiql-css"),
        explorer_js=url("explorer-js"),
        explorer_css=url("explorer-css"),
    )
    return HTMLResponse(body, headers=headers)


def storage_prefix(tabs: list[dict[str, str]]) -> str:
    """The localStorage namespace of the page: its version and its default tabs' digest."""
    digest = hashlib.sha256(json.dumps(tabs, sort_keys=True).encode()).hexdigest()[:12]
    return f"finance-gateway:graphiql:v{STORAGE_VERSION}:{digest}:"


def _tab_query(name: str, text: str) -> str:
    """The operation's text, under a comment naming it unless the text opens with one."""
    if text.lstrip().startswith("#"):
        return text
    title = " ".join(name.split())
    return f"# {title}\n{text}" if title else text


def _script_json(value: object) -> str:
    """JSON that cannot end its <script> element or an HTML comment, or break a JS string."""
    return (
        json.dumps(value, ensure_ascii=False)
        .replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


@cache
def _page_template() -> Template:
    return Template(files("gateway").joinpath("templates/graphiql.html").read_text("utf-8"))
