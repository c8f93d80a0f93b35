"""GraphiQL's browser assets: install them from their npm packages, and read what is installed.

Run `python -m gateway.graphiql_assets` (from the repository root) to install the pinned
packages with npm into `var/graphiql/npm/` and copy the six files the page loads (GraphiQL,
React and GraphiQL's explorer plugin) into `var/graphiql/assets/`, next to a `manifest.json`
naming their versions and sha256 digests.
A second run with the same pins and intact files does nothing and needs no network.

Without node and npm, or without a registry, it prints a warning and exits 0 (1 with
`--strict`): the gateway still starts, and GET /graphql then says that the assets are missing.
Nothing here is committed; `var/` is ignored.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

__all__ = [
    "ASSETS",
    "DEFAULT_ROOT",
    "MANIFEST_NAME",
    "PINNED_VERSIONS",
    "Asset",
    "InstallError",
    "InstalledAssets",
    "install",
    "main",
    "npm_install",
    "package_version",
    "read_manifest",
]

# graphiql 3.8.3 is the last 3.x release; 4.x dropped the UMD bundle. React 18 is the last
# major that ships UMD builds. The explorer plugin 3.2.5 is the last release whose peer
# @graphiql/react (^0.28) is the one graphiql 3.8.3 bundles (3.2.6 wants ^0.29); its UMD build
# takes React and @graphiql/react from the page's `GraphiQL` global.
PINNED_VERSIONS: Mapping[str, str] = {
    "graphiql": "3.8.3",
    "react": "18.3.1",
    "react-dom": "18.3.1",
    "@graphiql/plugin-explorer": "3.2.5",
}
DEFAULT_ROOT = Path("var/graphiql")
MANIFEST_NAME = "manifest.json"
_MANIFEST_FORMAT = 1
_NPM_TIMEOUT_SECONDS = 300


@dataclass(frozen=True, slots=True)
class Asset:
    """One file the GraphiQL page loads: its role in the page and where its package keeps it."""

    role: str
    package: str
    source: str
    # The file's name when the package's own is too generic to stand alone ("style.css").
    rename: str | None = None

    @property
    def name(self) -> str:
        """The file's name in the assets folder and in its URL."""
        return self.rename or PurePosixPath(self.source).name


ASSETS: tuple[Asset, ...] = (
    Asset("react", "react", "umd/react.production.min.js"),
    Asset("react-dom", "react-dom", "umd/react-dom.production.min.js"),
    Asset("graphiql-js", "graphiql", "graphiql.min.js"),
    Asset("graphiql-css", "graphiql", "graphiql.min.css"),
    Asset(
        "explorer-js",
        "@graphiql/plugin-explorer",
        "dist/index.umd.js",
        "graphiql-plugin-explorer.umd.js",
    ),
    Asset(
        "explorer-css",
        "@graphiql/plugin-explorer",
        "dist/style.css",
        "graphiql-plugin-explorer.css",
    ),
)


@dataclass(frozen=True, slots=True)
class InstalledAssets:
    """What a readable manifest says: package versions, and each role's file name and sha256."""

    versions: Mapping[str, str]
    names: Mapping[str, str]
    digests: Mapping[str, str]


class InstallError(Exception):
    """The assets could not be installed; the message says why, for a person."""


def read_manifest(assets_dir: Path) -> InstalledAssets | None:
    """The installed assets, or None unless the manifest is readable and names every file.

    Checks that each file exists, not its digest (that is the installer's job).
    """
    try:
        raw = json.loads((assets_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or raw.get("format") != _MANIFEST_FORMAT:
        return None
    versions, files = raw.get("versions"), raw.get("files")
    if not isinstance(versions, dict) or not isinstance(files, dict):
        return None
    names: dict[str, str] = {}
    digests: dict[str, str] = {}
    for asset in ASSETS:
        entry = files.get(asset.role)
        if not isinstance(entry, dict):
            return None
        name, digest = entry.get("name"), entry.get("sha256")
        if not isinstance(name, str) or not isinstance(digest, str):
            return None
        if PurePosixPath(name).name != name or not (assets_dir / name).is_file():
            return None
        names[asset.role], digests[asset.role] = name, digest
    return InstalledAssets(
        versions={str(key): str(value) for key, value in versions.items()},
        names=names,
        digests=digests,
    )


def install(root: Path = DEFAULT_ROOT) -> InstalledAssets:
    """Install the pinned assets under `root` (npm in `root/npm`, files in `root/assets`).

    Returns at once, without npm, when the manifest already matches the pins and the files
    their digests. Raises InstallError when npm is missing or fails, or a package lacks a file.
    """
    assets_dir = root / "assets"
    current = read_manifest(assets_dir)
    if current is not None and _is_current(current, assets_dir):
        return current
    npm_dir = root / "npm"
    npm_install(npm_dir, PINNED_VERSIONS)
    return _copy_assets(npm_dir / "node_modules", assets_dir)


def _is_current(installed: InstalledAssets, assets_dir: Path) -> bool:
    if dict(installed.versions) != dict(PINNED_VERSIONS):
        return False
    return all(
        installed.names[asset.role] == asset.name
        and _sha256(assets_dir / asset.name) == installed.digests[asset.role]
        for asset in ASSETS
    )


def npm_install(npm_dir: Path, packages: Mapping[str, str]) -> None:
    """`npm install` the pinned `packages` (name -> version) into `npm_dir`; InstallError if not."""
    npm = shutil.which("npm")
    if npm is None:
        raise InstallError("npm is not on PATH (install Node.js 18 or newer with npm)")
    npm_dir.mkdir(parents=True, exist_ok=True)
    specs = [f"{package}@{version}" for package, version in packages.items()]
    command = [
        npm,
        "install",
        "--no-audit",
        "--no-fund",
        "--ignore-scripts",
        "--save-exact",
        "--fetch-retries=1",
        "--prefix",
        str(npm_dir),
        *specs,
    ]
    try:
        # npm's own output goes to the terminal: it is what a person needs when it fails.
        completed = subprocess.run(  # noqa: S603 - fixed arguments, npm found on PATH
            command, check=False, timeout=_NPM_TIMEOUT_SECONDS, stdout=sys.stderr
        )
    except subprocess.TimeoutExpired as error:
        raise InstallError(f"npm install took longer than {_NPM_TIMEOUT_SECONDS} s") from error
    except OSError as error:
        raise InstallError(f"npm could not be run: {error}") from error
    if completed.returncode != 0:
        raise InstallError(f"npm install exited with status {completed.returncode}")


def _copy_assets(node_modules: Path, assets_dir: Path) -> InstalledAssets:
    for package, version in PINNED_VERSIONS.items():
        found = package_version(node_modules / package)
        if found != version:
            raise InstallError(f"npm installed {package} {found}, expected {version}")
    assets_dir.mkdir(parents=True, exist_ok=True)
    # The manifest goes first and comes back last, so a half-copied folder never looks installed.
    (assets_dir / MANIFEST_NAME).unlink(missing_ok=True)
    digests: dict[str, str] = {}
    for asset in ASSETS:
        source = node_modules / asset.package / asset.source
        if not source.is_file():
            version = PINNED_VERSIONS[asset.package]
            raise InstallError(f"{asset.package}@{version} has no {asset.source}")
        partial = assets_dir / f".{asset.name}.partial"
        shutil.copyfile(source, partial)
        os.replace(partial, assets_dir / asset.name)
        digests[asset.role] = _sha256(assets_dir / asset.name)
    wanted = {asset.name for asset in ASSETS}
    for stale in assets_dir.iterdir():
        if stale.is_file() and stale.name not in wanted:
            stale.unlink()
    manifest = {
        "format": _MANIFEST_FORMAT,
        "versions": dict(PINNED_VERSIONS),
        "files": {
            asset.role: {
                "name": asset.name,
                "package": asset.package,
                "source": asset.source,
                "sha256": digests[asset.role],
            }
            for asset in ASSETS
        },
    }
    partial_manifest = assets_dir / f".{MANIFEST_NAME}.partial"
    partial_manifest.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(partial_manifest, assets_dir / MANIFEST_NAME)
    return InstalledAssets(
        versions=dict(PINNED_VERSIONS),
        names={asset.role: asset.name for asset in ASSETS},
        digests=digests,
    )


def package_version(package_dir: Path) -> str | None:
    """The version an installed package's package.json names, or None."""
    try:
        raw = json.loads((package_dir / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    version = raw.get("version") if isinstance(raw, dict) else None
    return version if isinstance(version, str) else None


def _sha256(path: Path) -> str:
    try:
        with path.open("rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()
    except OSError:
        return ""


def main(argv: Sequence[str] | None = None) -> int:
    """Install the assets; exit 0 with a warning on failure unless `--strict` is given."""
    parser = argparse.ArgumentParser(
        prog="python -m gateway.graphiql_assets",
        description="Install GraphiQL's browser assets from npm (no CDN at run time).",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=DEFAULT_ROOT,
        help=f"folder for npm's install and the assets (default: {DEFAULT_ROOT})",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 instead of 0 when the install fails"
    )
    arguments = parser.parse_args(argv)
    root: Path = arguments.root
    try:
        installed = install(root)
    except InstallError as error:
        sys.stderr.write(
            f"WARNING: GraphiQL assets are not installed: {error}.\n"
            "The gateway still starts and /graphql still accepts POST requests; GET /graphql\n"
            "shows a page saying the assets are missing. To install them, make node and npm\n"
            "and the npm registry reachable, then run: python -m gateway.graphiql_assets\n"
        )
        return 1 if arguments.strict else 0
    versions = ", ".join(f"{name} {version}" for name, version in installed.versions.items())
    sys.stderr.write(f"GraphiQL assets installed in {root / 'assets'} ({versions}).\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
