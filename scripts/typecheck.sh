#!/usr/bin/env bash
# Type-check spectare/, services/ and schemas/ with mypy under their import names.
#
# Services and schemas are mapped into `spectare.*` by pyproject's package-dir, which mypy cannot
# follow through an editable install. So mypy reads the tree of symlinks laid out as the installed
# package that the layer check uses (tests/layers.py), and the paths it prints are turned back into
# the files' own.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tree=build/typecheck
.venv/bin/python -c "import sys; from pathlib import Path; from tests.layers import package_tree; package_tree(Path(sys.argv[1]))" "$tree"
services=$(cd services && ls -d */ | tr -d / | paste -sd'|')
status=0
(cd "$tree" && "$root/.venv/bin/mypy" --config-file "$root/pyproject.toml" --cache-dir "$root/build/mypy-cache" \
    -p spectare) > build/typecheck.out 2>&1 || status=$?
sed -E -e "s#^spectare/($services)/#services/\1/#" -e "s#^spectare/schemas/#schemas/#" build/typecheck.out
exit $status
