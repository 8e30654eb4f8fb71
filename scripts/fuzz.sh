#!/usr/bin/env bash
# The fuzzers' long run: every property in tests/fuzz and every C harness in cuse-shim/fuzz for
# SECONDS each (default 600), with a random seed (printed; TAPEPROXY_FUZZ_SEED=N to choose one).
# Failing TypeScript inputs are saved in tests/fuzz/corpus/TARGET/found-*; the C harnesses' new
# inputs go to cuse-shim/build/fuzz/corpus-TARGET and crashes to cuse-shim/build/fuzz/crash-*.
#   npm run fuzz            # 10 minutes per property and per C target
#   npm run fuzz -- 60      # one minute each
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TAPEPROXY_FUZZ_SECONDS=${1:-${TAPEPROXY_FUZZ_SECONDS:-600}}
exec npx vitest run tests/fuzz
