"""The package's layers (issue 17, docs/architecture.md) stay enforced.

``lint-imports`` (run by the README's test command) checks the contracts in
``pyproject.toml``; these tests check the contracts themselves: that none was
dropped, that every package and every module of the layered subpackages has a
place in them (a module left out is never checked), and that the linter does
fail on an upward import.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "landquota"

#: The contracts docs/architecture.md describes; dropping one must fail here.
CONTRACTS = {
    "layers",
    "store-layers",
    "backends",
    "engines",
    "intake-import",
    "intake-vct",
    "allocation",
    "no-cycles",
}


def _contracts() -> dict[str, dict[str, Any]]:
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {c["id"]: c for c in conf["tool"]["importlinter"]["contracts"]}


def _names(layers: list[str]) -> set[str]:
    return {n.strip() for layer in layers for n in layer.split("|")}


def _modules(folder: Path) -> set[str]:
    names = {p.stem for p in folder.glob("*.py") if p.stem not in ("__init__", "__main__")}
    return names | {p.name for p in folder.iterdir() if (p / "__init__.py").exists()}


def test_no_contract_was_dropped() -> None:
    assert set(_contracts()) == CONTRACTS


def test_every_package_has_a_layer() -> None:
    # a new top-level module or subpackage must be placed in the layers, or nothing checks it
    placed = {n.removeprefix("landquota.") for n in _names(_contracts()["layers"]["layers"])}
    assert _modules(PKG) == placed


def test_every_module_of_the_layered_packages_has_a_layer() -> None:
    contracts = _contracts()
    for cid, package in (("store-layers", "store"), ("engines", "engines"), ("allocation", "allocation")):
        assert _modules(PKG / package) == _names(contracts[cid]["layers"]), cid


def test_lint_imports_fails_on_an_upward_import(tmp_path: Path) -> None:
    # the real linter on a copy of the package with one upward import: the store
    # (a lower layer) importing the maps (outputs, a higher one)
    shutil.copytree(PKG, tmp_path / "landquota", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    run = [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"]
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    ok = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    workspace = tmp_path / "landquota" / "store" / "workspace.py"
    text = workspace.read_text(encoding="utf-8")
    anchor = "from landquota.errors import"
    assert anchor in text
    workspace.write_text(
        text.replace(anchor, "import landquota.outputs.maps  # noqa: F401\n" + anchor, 1),
        encoding="utf-8",
    )
    bad = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert bad.returncode != 0
    assert "landquota.store.workspace -> landquota.outputs.maps" in bad.stdout
