#!/usr/bin/env bash
# Type-check spectare/, services/ and schemas/ with mypy under their import names.
#
# Services and schemas are mapped into `spectare.*` by pyproject's package-dir, which mypy cannot
# follow through an editable install. So mypy reads a tree of symlinks (build/typecheck/spectare/...)
# laid out as the installed package, and the paths it prints are turned back into the files' own.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tree=build/typecheck
rm -rf "$tree"
mkdir -p "$tree/spectare"
for entry in spectare/*; do
    [ "$(basename "$entry")" = __pycache__ ] || ln -s "$root/$entry" "$tree/spectare/"
done
ln -s "$root/schemas" "$tree/spectare/schemas"
for service in services/*/; do
    ln -s "$root/${service%/}" "$tree/spectare/$(basename "$service")"
done
services=$(cd services && ls -d */ | tr -d / | paste -sd'|')
cd "$tree"
status=0
"$root/.venv/bin/mypy" --config-file "$root/pyproject.toml" --cache-dir "$root/build/mypy-cache" -p spectare \
    > "$root/build/typecheck.out" 2>&1 || status=$?
sed -E -e "s#^spectare/($services)/#services/\1/#" -e "s#^spectare/schemas/#schemas/#" "$root/build/typecheck.out"
exit $status
