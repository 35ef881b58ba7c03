#!/usr/bin/env bash
# The README's test command (and .ci/run's): install what the tests need, then lint, type-check,
# check the layering and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use, installed when missing: tshark (the packet sensor's reference),
# postgresql (the second IncidentStore), poppler-utils and the fonts (the report PDFs), WeasyPrint's
# Pango libraries, chromium (the console's browser tests)
need=(tshark postgresql poppler-utils fonts-dejavu-core libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0
      chromium)
missing=()
for package in "${need[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "!! ${missing[*]} missing and not root: the tests that need them will fail" >&2
  fi
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  if ! "$python" -m venv .venv 2>/dev/null; then
    # Debian's python3 needs python3-venv for ensurepip
    apt-get update -qq && apt-get install -y -qq python3-venv
    rm -rf .venv && "$python" -m venv .venv
  fi
fi
echo "== installing govsoc[test]"
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

echo "== ruff"
.venv/bin/ruff check .
echo "== import-linter"
.venv/bin/lint-imports
echo "== mypy --strict"
.venv/bin/mypy
# tests/test_bundle.py installs `govsoc bundle`'s wheelhouse with the package index switched off
# (tests reach nothing but loopback). Building the wheelhouse needs the index, so it is built here,
# with the other installs, in the background while the suite runs (pip mostly waits on the network:
# ~17 s of CPU in ~3.5 min); the test waits for it, and skips when run without this script.
TEST_BUNDLE_DIR=$(mktemp -d -t govsoc-bundle-XXXXXX)
export TEST_BUNDLE_DIR
(.venv/bin/govsoc bundle "$TEST_BUNDLE_DIR/wheels" --quiet >"$TEST_BUNDLE_DIR/log" 2>&1
 echo $? >"$TEST_BUNDLE_DIR/exit") &

echo "== pytest"
.venv/bin/pytest "$@"
