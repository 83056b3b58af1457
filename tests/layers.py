"""Run the layer contracts of pyproject.toml (`[tool.importlinter]`): `python -m tests.layers`.

Import-linter (grimp) finds a package by walking its directory, and pyproject's `package-dir` maps
services/<name>/ and schemas/ into `spectare.*`, which an editable install resolves only at import time:
plain `lint-imports` here sees spectare/ alone. So the check runs in a tree of symlinks laid out as the
installed package (build/layers/spectare/..., grimp follows links), from that tree's directory so that
it is the `spectare` found first, with this repository's pyproject.toml as the configuration.
"""

import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def package_tree(dest: Path, root: Path = ROOT, replace: Mapping[str, Path] | None = None) -> Path:
    """Lay out `spectare` as installed under dest (symlinks into root) and return dest. `replace` maps a
    subpackage's name (`"segmenter"`) to another directory to link in its place."""
    config = tomllib.loads((root / "pyproject.toml").read_text())
    mapped = config["tool"]["setuptools"]["package-dir"]
    shutil.rmtree(dest, ignore_errors=True)
    package = dest / "spectare"
    package.mkdir(parents=True)
    for entry in (root / "spectare").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for name, directory in mapped.items():
        top, _, sub = name.partition(".")
        if top != "spectare" or not sub or "." in sub:
            raise ValueError(f"package-dir entry {name!r}: this tree knows only spectare.<name>")
        (package / sub).symlink_to(root / directory)
    for sub, directory in (replace or {}).items():
        (package / sub).unlink()
        (package / sub).symlink_to(directory)
    return dest


def lint_imports(tree: Path, config: Path = PYPROJECT) -> subprocess.CompletedProcess[str]:
    """`lint-imports` with config over the package in tree (stdout and stderr together)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(LINT_IMPORTS), str(config), "--no-cache"], cwd=tree, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)


def main() -> int:
    result = lint_imports(package_tree(ROOT / "build" / "layers"))
    sys.stdout.write(result.stdout)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
