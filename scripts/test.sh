#!/usr/bin/env bash
# The whole test suite: installs and builds what it needs, then runs every test once.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npx tsc -p tsconfig.tests.json
exec npx vitest run
