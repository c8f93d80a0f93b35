"""GraphiQL page and assets: local files only, escaped values, CSP, a plain page without assets.

The assets are installed by the real installer through a fake `npm` on PATH (the outer edge),
so the suite needs neither node nor a registry.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from gateway.app import create_app
from gateway.graphiql import (
    ASSETS_PATH,
    INSTALL_COMMAND,
    graphiql_routes,
    render_graphiql_page,
    storage_prefix,
)
from gateway.graphiql_assets import (
    ASSETS,
    MANIFEST_NAME,
    PINNED_VERSIONS,
    InstallError,
    install,
    main,
    read_manifest,
)
from gateway.lifespan import Services
from gateway.settings import Settings
from tests.factories import make_customer
from tests.fixtures.gateway import GraphQLClient
from tests.fixtures.serving import serving
from tests.gateway.chromium import chromium_path, open_page
from tests.gateway.test_graphiql_examples import analyst_ledger

_FAKE_FILES = {
    "react.production.min.js": "window.React = {};\n",
    "react-dom.production.min.js": "window.ReactDOM = {};\n",
    "graphiql.min.js": "window.GraphiQL = function () {};\n",
    "graphiql.min.css": ".graphiql-container { display: flex; }\n",
    "graphiql-plugin-explorer.umd.js": "window.GraphiQLPluginExplorer = {};\n",
    "graphiql-plugin-explorer.css": ".graphiql-explorer-root { padding: 0; }\n",
}
_MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
_HOSTILE = "</script><script>alert(1)</script><!-- & \u2028\u2029"

# Stands in for npm: records its arguments, then lays out node_modules as the pinned
# packages do. FAKE_NPM_OMIT names a package file to leave out.
_FAKE_NPM = """#!{python}
import json, os, pathlib, sys
log = pathlib.Path(os.environ["FAKE_NPM_LOG"])
with log.open("a") as file:
    file.write(json.dumps(sys.argv[1:]) + "\\n")
prefix = pathlib.Path(sys.argv[sys.argv.index("--prefix") + 1])
files = json.loads(os.environ["FAKE_NPM_FILES"])
for spec in sys.argv[sys.argv.index("--prefix") + 2:]:
    package, version = spec.rsplit("@", 1)
    root = prefix / "node_modules" / package
    root.mkdir(parents=True, exist_ok=True)
    (root / "package.json").write_text(json.dumps({{"name": package, "version": version}}))
for relative, content in files.items():
    if relative != os.environ.get("FAKE_NPM_OMIT"):
        target = prefix / "node_modules" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
"""


class _PageParser(HTMLParser):
    """Collects what a browser would fetch or run from the page."""

    def __init__(self) -> None:
        super().__init__()
        self.script_sources: list[str] = []
        self.stylesheets: list[str] = []
        self.inline_script_nonces: list[str | None] = []
        self.json_blocks: list[str] = []
        self._in_json = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script" and attributes.get("type") == "application/json":
            self._in_json = True
            self.json_blocks.append("")
        elif tag == "script" and attributes.get("src") is not None:
            self.script_sources.append(attributes["src"] or "")
        elif tag == "script":
            self.inline_script_nonces.append(attributes.get("nonce"))
        elif tag == "link" and attributes.get("rel") == "stylesheet":
            self.stylesheets.append(attributes.get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_json = False

    def handle_data(self, data: str) -> None:
        if self._in_json:
            self.json_blocks[-1] += data


def _parse(page: str) -> _PageParser:
    parser = _PageParser()
    parser.feed(page)
    parser.close()
    return parser


def _make_app(
    assets_dir: Path,
    *,
    default_headers: dict[str, str] | None = None,
    example_operations: list[tuple[str, str]] | None = None,
) -> Starlette:
    async def graphiql_page(request: Request) -> HTMLResponse:
        return render_graphiql_page(
            assets_dir=assets_dir,
            endpoint="/graphql",
            default_headers=default_headers,
            example_operations=example_operations or [],
        )

    return Starlette(routes=[Route("/graphql", graphiql_page), *graphiql_routes(assets_dir)])


def _client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.fixture
def npm_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake npm first on PATH; the returned file gets one line per npm run."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(_FAKE_NPM.format(python=sys.executable))
    npm.chmod(0o755)
    log = tmp_path / "npm.log"
    log.touch()
    files = {f"{asset.package}/{asset.source}": _FAKE_FILES[asset.name] for asset in ASSETS}
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("FAKE_NPM_LOG", str(log))
    monkeypatch.setenv("FAKE_NPM_FILES", json.dumps(files))
    return log


@pytest.fixture
def assets_dir(tmp_path: Path, npm_log: Path) -> Path:
    install(tmp_path / "graphiql")
    return tmp_path / "graphiql" / "assets"


async def test_page_loads_scripts_and_styles_only_from_the_gateway(assets_dir: Path) -> None:
    async with _client(_make_app(assets_dir)) as client:
        response = await client.get("/graphql")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert "http://" not in response.text
    assert "https://" not in response.text
    page = _parse(response.text)
    assert [source.split("?")[0] for source in page.script_sources] == [
        f"{ASSETS_PATH}/react.production.min.js",
        f"{ASSETS_PATH}/react-dom.production.min.js",
        f"{ASSETS_PATH}/graphiql.min.js",
        f"{ASSETS_PATH}/graphiql-plugin-explorer.umd.js",
    ]
    assert [href.split("?")[0] for href in page.stylesheets] == [
        f"{ASSETS_PATH}/graphiql.min.css",
        f"{ASSETS_PATH}/graphiql-plugin-explorer.css",
    ]


async def test_every_referenced_asset_is_served_with_its_type_and_long_caching(
    assets_dir: Path,
) -> None:
    async with _client(_make_app(assets_dir)) as client:
        page = _parse((await client.get("/graphql")).text)
        urls = [*page.script_sources, *page.stylesheets]
        responses = {url: await client.get(url) for url in urls}

    assert len(responses) == 6
    for url, response in responses.items():
        name = url.removeprefix(f"{ASSETS_PATH}/").split("?")[0]
        assert response.status_code == 200, url
        assert response.headers["content-type"] == _MEDIA_TYPES[Path(name).suffix], url
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable", url
        assert response.headers["x-content-type-options"] == "nosniff", url
        assert response.text == _FAKE_FILES[name], url


async def test_an_unversioned_asset_url_is_revalidated_not_cached_forever(
    assets_dir: Path,
) -> None:
    async with _client(_make_app(assets_dir)) as client:
        response = await client.get(f"{ASSETS_PATH}/graphiql.min.js")

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-cache"


async def test_headers_and_operations_are_embedded_without_breaking_out(
    assets_dir: Path,
) -> None:
    token = f"Bearer {_HOSTILE}"
    operations = [
        ("Dashboard", "query Dashboard { customers(first: 50) { edges { node { id } } } }"),
        (f"Evil {_HOSTILE}", f'query Evil {{ customer(id: "{_HOSTILE}") {{ id }} }}'),
    ]
    app = _make_app(
        assets_dir, default_headers={"Authorization": token}, example_operations=operations
    )

    async with _client(app) as client:
        response = await client.get("/graphql")

    assert "alert(1)</script>" not in response.text
    assert "<!--" not in response.text
    assert "\u2028" not in response.text
    assert "\u2029" not in response.text
    page = _parse(response.text)
    assert len(page.json_blocks) == 1
    assert len(page.inline_script_nonces) == 1
    config = json.loads(page.json_blocks[0])
    tabs = [
        {"query": f"# Dashboard\n{operations[0][1]}"},
        {"query": f"# {' '.join(operations[1][0].split())}\n{operations[1][1]}"},
    ]
    assert config == {
        "endpoint": "/graphql",
        "installCommand": INSTALL_COMMAND,
        "headers": json.dumps({"Authorization": token}, indent=2),
        "tabs": tabs,
        "storagePrefix": storage_prefix(tabs),
    }


def test_the_storage_namespace_is_versioned_and_follows_the_default_tabs() -> None:
    tabs = [{"query": "query Dashboard { __typename }"}]
    prefix = storage_prefix(tabs)

    assert prefix.startswith("finance-gateway:graphiql:v2:")
    assert storage_prefix(tabs) == prefix
    assert storage_prefix([{"query": "query Other { __typename }"}]) != prefix


async def test_no_default_headers_leaves_the_headers_editor_empty(assets_dir: Path) -> None:
    async with _client(_make_app(assets_dir)) as client:
        response = await client.get("/graphql")

    config = json.loads(_parse(response.text).json_blocks[0])
    assert config["headers"] == ""
    assert config["tabs"] == []


async def test_csp_allows_only_own_scripts_and_the_nonced_boot_script(assets_dir: Path) -> None:
    async with _client(_make_app(assets_dir)) as client:
        first = await client.get("/graphql")
        second = await client.get("/graphql")

    nonces = _parse(first.text).inline_script_nonces
    assert len(nonces) == 1
    assert nonces[0] is not None
    assert first.headers["content-security-policy"] == (
        f"default-src 'none'; script-src 'self' 'nonce-{nonces[0]}'; "
        "style-src 'self' 'unsafe-inline'; font-src 'self' data:; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    assert _parse(second.text).inline_script_nonces != nonces


async def test_missing_assets_page_says_so_plainly_without_scripts(tmp_path: Path) -> None:
    app = _make_app(tmp_path / "absent", default_headers={"Authorization": "Bearer t"})

    async with _client(app) as client:
        response = await client.get("/graphql")
        asset = await client.get(f"{ASSETS_PATH}/graphiql.min.js")

    assert response.status_code == 200
    assert "GraphiQL's assets are not installed" in response.text
    assert f"<code>{INSTALL_COMMAND}</code>" in response.text
    assert "JSON POST requests" in response.text
    assert "<script" not in response.text
    assert "Loading" not in response.text
    assert "Bearer t" not in response.text
    assert response.headers["content-security-policy"].startswith("default-src 'none'; ")
    assert "script-src" not in response.headers["content-security-policy"]
    assert asset.status_code == 404


async def test_assets_installed_after_start_are_served_without_a_restart(
    tmp_path: Path, npm_log: Path
) -> None:
    root = tmp_path / "graphiql"
    app = _make_app(root / "assets")

    async with _client(app) as client:
        before = await client.get(f"{ASSETS_PATH}/graphiql.min.js")
        install(root)
        after = await client.get(f"{ASSETS_PATH}/graphiql.min.js")
        page = await client.get("/graphql")

    assert before.status_code == 404
    assert after.status_code == 200
    assert len(_parse(page.text).script_sources) == 4


async def test_a_manifest_naming_a_missing_file_counts_as_not_installed(
    assets_dir: Path,
) -> None:
    (assets_dir / "graphiql.min.css").unlink()

    async with _client(_make_app(assets_dir)) as client:
        response = await client.get("/graphql")

    assert read_manifest(assets_dir) is None
    assert "<script" not in response.text
    assert "not installed" in response.text


def test_install_copies_exactly_the_page_files_and_records_them(
    assets_dir: Path, npm_log: Path
) -> None:
    manifest = json.loads((assets_dir / MANIFEST_NAME).read_text())

    assert sorted(path.name for path in assets_dir.iterdir()) == sorted(
        [MANIFEST_NAME, *_FAKE_FILES]
    )
    assert manifest["versions"] == dict(PINNED_VERSIONS)
    assert {role: entry["name"] for role, entry in manifest["files"].items()} == {
        "react": "react.production.min.js",
        "react-dom": "react-dom.production.min.js",
        "graphiql-js": "graphiql.min.js",
        "graphiql-css": "graphiql.min.css",
        "explorer-js": "graphiql-plugin-explorer.umd.js",
        "explorer-css": "graphiql-plugin-explorer.css",
    }
    runs = [json.loads(line) for line in npm_log.read_text().splitlines()]
    assert runs == [
        [
            "install",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--save-exact",
            "--fetch-retries=1",
            "--prefix",
            str(assets_dir.parent / "npm"),
            "graphiql@3.8.3",
            "react@18.3.1",
            "react-dom@18.3.1",
            "@graphiql/plugin-explorer@3.2.5",
        ]
    ]


def test_install_again_skips_npm_unless_a_file_changed(assets_dir: Path, npm_log: Path) -> None:
    install(assets_dir.parent)
    runs_when_intact = len(npm_log.read_text().splitlines())
    (assets_dir / "graphiql.min.js").write_text("tampered")
    install(assets_dir.parent)

    assert runs_when_intact == 1
    assert len(npm_log.read_text().splitlines()) == 2
    assert (assets_dir / "graphiql.min.js").read_text() == _FAKE_FILES["graphiql.min.js"]


def test_install_refuses_a_package_without_its_umd_file(
    tmp_path: Path, npm_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_NPM_OMIT", "react/umd/react.production.min.js")

    with pytest.raises(InstallError, match=r"react@18\.3\.1 has no umd/react\.production\.min\.js"):
        install(tmp_path / "graphiql")

    assert read_manifest(tmp_path / "graphiql" / "assets") is None


@pytest.mark.parametrize(
    ("arguments", "exit_code"), [([], 0), (["--strict"], 1)], ids=["default_case", "strict_case"]
)
def test_installer_without_npm_warns_and_exits(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    arguments: list[str],
    exit_code: int,
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    code = main(["--root", str(tmp_path / "graphiql"), *arguments])

    assert code == exit_code
    error = capsys.readouterr().err
    assert error.startswith("WARNING: GraphiQL assets are not installed: npm is not on PATH")
    assert INSTALL_COMMAND in error
    assert not (tmp_path / "graphiql").exists()


# --- in a real browser ------------------------------------------------------------------------

ANONYMOUS_QUERY = "{ customers(first: 2) { edges { node { id displayName } } } }"
# The real page files, installed by `make assets` (`.ci/run` runs it); the installer skips npm
# when they are already in place.
_REAL_ASSETS = Path("var/graphiql")


def _require(what: str) -> None:
    """Without Chromium or GraphiQL's files: skip locally, fail where services are required."""
    message = f"{what} (CI installs it: see .ci/run and `make assets`)"
    if os.environ.get("CI") or os.environ.get("REQUIRE_SERVICES"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
async def graphiql_server(
    settings: Settings, services: Services, tenant_id: int, gql: GraphQLClient
) -> AsyncIterator[str]:
    """The gateway with GraphiQL over a real socket (as `gateway serve` runs it); its URL."""
    binary = chromium_path()
    if binary is None:
        _require("Chromium is not installed")
    if read_manifest(_REAL_ASSETS / "assets") is None:
        try:
            await asyncio.to_thread(install, _REAL_ASSETS)
        except InstallError as error:
            _require(f"GraphiQL's files cannot be installed: {error}")
    with_graphiql = dataclasses.replace(settings, graphiql=True, graphiql_assets_dir=_REAL_ASSETS)
    app = create_app(
        with_graphiql,
        dataclasses.replace(
            services, settings=with_graphiql, development_token=gql.token(tenant_id)
        ),
    )
    async with serving(app) as url:
        yield url


async def test_an_anonymous_query_typed_into_the_first_tab_runs_and_shows_data(
    graphiql_server: str, engine: AsyncEngine, tenant_id: int, tmp_path: Path
) -> None:
    names = ["Ada Lovelace", "Grace Hopper"]
    for name in names:
        await make_customer(engine, tenant_id, display_name=name)
    binary = chromium_path()
    assert binary is not None

    async with open_page(binary, tmp_path / "profile") as page:
        # A browser that used an older GraphiQL page kept its tabs under GraphiQL's default
        # keys, the first one pinned to operation "Dashboard" with other text.
        await page.navigate(f"{graphiql_server}/healthz")
        old_tabs = {
            "tabs": [{"id": "old", "hash": "old", "title": "Dashboard", "query": "query Old "
                      "{ __typename }", "variables": None, "headers": None,
                      "operationName": "Dashboard", "response": None}],
            "activeTabIndex": 0,
        }  # fmt: skip
        await page.evaluate(
            f"localStorage.setItem('graphiql:tabState', {json.dumps(json.dumps(old_tabs))});"
            "localStorage.setItem('graphiql:operationName', 'Dashboard'); true"
        )
        await page.navigate(f"{graphiql_server}/graphql")
        editor = "document.querySelector('.graphiql-query-editor .CodeMirror')"
        first_tab = await page.wait_for(f"{editor} && {editor}.CodeMirror.getValue()")
        assert "query Dashboard" in first_tab  # the page's defaults, not the old tab state

        await page.evaluate(f"{editor}.CodeMirror.focus(); true")
        await page.select_all()
        await page.type_text(ANONYMOUS_QUERY)
        # Run straight away, as a person pasting and clicking does: GraphiQL's own idea of
        # the operation name catches up with the text only later (a debounced handler).
        typed = await page.evaluate(
            f"var text = {editor}.CodeMirror.getValue();"
            "document.querySelector('.graphiql-execute-button').click(); text"
        )
        response = "document.querySelector('.graphiql-response .CodeMirror').CodeMirror"
        shown = await page.wait_for(f"{response}.getValue()")
        stored = await page.evaluate("Object.keys(localStorage)")

    assert typed == ANONYMOUS_QUERY
    body = json.loads(shown)
    assert "errors" not in body, body
    assert [edge["node"]["displayName"] for edge in body["data"]["customers"]["edges"]] == names
    # Everything the page stores is under its own versioned namespace.
    own = [key for key in stored if key.startswith("finance-gateway:graphiql:v")]
    assert own
    assert set(stored) - set(own) == {"graphiql:tabState", "graphiql:operationName"}


async def test_the_summary_tab_runs_and_the_explorer_plugin_opens(
    graphiql_server: str, engine: AsyncEngine, tenant_id: int, tmp_path: Path
) -> None:
    await analyst_ledger(engine, tenant_id)
    binary = chromium_path()
    assert binary is not None

    async with open_page(binary, tmp_path / "profile") as page:
        await page.navigate(f"{graphiql_server}/graphql")
        tab = (
            "Array.from(document.querySelectorAll('.graphiql-tab-button'))"
            ".find(function (button) { return button.textContent.trim() === 'Summary'; })"
        )
        await page.wait_for(f"!!{tab}")
        await page.evaluate(f"{tab}.click(); true")
        editor = "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror"
        await page.wait_for(f"{editor}.getValue().indexOf('query Summary') !== -1")
        await page.evaluate("document.querySelector('.graphiql-execute-button').click(); true")
        response = "document.querySelector('.graphiql-response .CodeMirror').CodeMirror"
        shown = await page.wait_for(f"{response}.getValue()")

        explorer = "document.querySelector('[aria-label=\"Show GraphiQL Explorer\"]')"
        await page.wait_for(f"!!{explorer}")
        await page.evaluate(f"{explorer}.click(); true")
        # The panel lists the schema's root fields, analysts' ones included.
        panel = await page.wait_for(
            "(function () { var root = document.querySelector('.graphiql-explorer-root');"
            " return root && root.textContent.indexOf('ledgerSummary') !== -1"
            " ? root.textContent : ''; })()"
        )

    body = json.loads(shown)
    assert "errors" not in body, body
    groups = [edge["node"] for edge in body["data"]["ledgerSummary"]["edges"]]
    assert sorted((g["periodStart"], g["direction"], g["entryCount"]) for g in groups) == [
        ("2026-03-01", "CREDIT", 2),
        ("2026-03-01", "DEBIT", 2),
        ("2026-05-01", "CREDIT", 1),
        ("2026-05-01", "DEBIT", 1),
    ]
    assert "customers" in panel
