"""The layer contracts of pyproject.toml (`[tool.importlinter]`) hold for this tree, and they do catch a breach:
the same contracts over a copy of one package with one forbidden import added (inside a function body, which
import-linter reads like any other) report it, by module and line. No server; about 2 s."""

import shutil
from pathlib import Path

import pytest

from .layers import ROOT, lint_imports, package_tree


def test_the_layer_contracts_are_kept(tmp_path: Path) -> None:
    result = lint_imports(package_tree(tmp_path))
    assert result.returncode == 0, result.stdout
    assert "Contracts: 2 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(("package", "source", "module", "imported", "broken"), [
    ("segmenter", "services/segmenter", "service.py", "spectare.detector.gate",
     "spectare.segmenter is not allowed to import spectare.detector:"),
    ("core", "spectare/core", "store.py", "spectare.media.frames",
     "spectare.core is not allowed to import spectare.media:"),
    ("cli", "spectare/cli", "common.py", "spectare.indexer.queries",
     "spectare.cli is not allowed to import spectare.indexer:"),
], ids=["service-to-service", "core-to-media", "cli-to-service"])
def test_a_forbidden_import_breaks_a_contract(tmp_path: Path, package: str, source: str, module: str,
                                              imported: str, broken: str) -> None:
    copy = tmp_path / "copy" / package
    shutil.copytree(ROOT / source, copy, ignore=shutil.ignore_patterns("__pycache__"))
    path = copy / module
    lines = path.read_text().splitlines()
    lines += ["", "", "def _deliberate() -> None:", f"    import {imported}  # noqa: F401"]
    path.write_text("\n".join(lines) + "\n")

    result = lint_imports(package_tree(tmp_path / "tree", replace={package: copy}))
    assert result.returncode == 1, result.stdout
    assert "Contracts: 1 kept, 1 broken." in result.stdout
    assert broken in result.stdout
    assert f"spectare.{package}.{module.removesuffix('.py')} -> {imported} (l.{len(lines)})" in result.stdout
