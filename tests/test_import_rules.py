"""The import rules of setup.cfg hold (import-linter), and the package keeps its shape."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

PARTS = ("space", "data", "store", "stats", "figures", "trial", "search", "report", "winners")


def lint_imports(config: Path) -> subprocess.CompletedProcess:
    code = ("import sys; from importlinter.cli import lint_imports; "
            f"sys.exit(lint_imports(config_filename={str(config)!r}, no_cache=True, no_logo=True))")
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_the_import_contracts_are_kept():
    result = lint_imports(REPO / "setup.cfg")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_contracts_name_the_layers_and_the_forbidden_arrows():
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    contracts = {name: config[name] for name in config.sections() if name.startswith("importlinter:contract:")}
    types = sorted(section["type"] for section in contracts.values())
    assert types.count("forbidden") >= 2 and "layers" in types and "acyclic_siblings" in types
    layers = next(s for s in contracts.values() if s["type"] == "layers")["layers"]
    assert all(f"study.{part}" in layers for part in PARTS)
    forbidden = {s["source_modules"].strip(): s["forbidden_modules"].split() for s in contracts.values()
                 if s["type"] == "forbidden"}
    assert {"study.search", "study.trial"} <= set(forbidden["study.report"])
    assert "study.search" in forbidden["study.trial"]


def test_an_import_inside_a_function_breaks_a_contract(tmp_path):
    # best_model imports the predictions record inside a function only: the checker must see it.
    config = tmp_path / "contracts.ini"
    config.write_text("[importlinter]\nroot_package = study\n\n"
                      "[importlinter:contract:probe]\nname = probe\ntype = forbidden\n"
                      "source_modules =\n    study.store.best_model\nforbidden_modules =\n    study.store.predictions\n")
    result = lint_imports(config)
    assert result.returncode != 0
    assert "study.store.best_model -> study.store.predictions" in result.stdout


def test_the_package_top_holds_at_most_ten_modules_and_every_part_says_what_it_is():
    top = sorted(p.name for p in (REPO / "study").glob("*.py"))
    assert len(top) <= 10, top
    for part in PARTS:
        init = REPO / "study" / part / "__init__.py"
        assert init.read_text(encoding="utf-8").startswith('"""'), part
        assert any(p.name != "__init__.py" for p in init.parent.glob("*.py")), part
