#!/usr/bin/env bash
# Build the jobrunner wheel (the agent alone, no pulumi) into OUT_DIR (default: dist/).
#
#   packaging/build-wheel.sh [OUT_DIR]
#
# The package is staged in a temporary folder with packaging/jobrunner/pyproject.toml, so the
# wheel holds jobrunner/ and nothing else. SOURCE_DATE_EPOCH fixes the archive timestamps:
# the same sources give the same bytes, and so the same image template name.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(mkdir -p "${1:-$root/dist}" && cd "${1:-$root/dist}" && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cp "$root/packaging/jobrunner/pyproject.toml" "$stage/"
rsync -a --exclude '__pycache__' --exclude '*.pyc' "$root/jobrunner" "$stage/" 2>/dev/null \
  || { cp -r "$root/jobrunner" "$stage/"; find "$stage/jobrunner" -name '__pycache__' -prune -exec rm -rf {} +; }
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1700000000}"
"$python" -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir "$out" "$stage"
ls "$out"/jobrunner-*.whl
