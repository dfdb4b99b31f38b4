#!/usr/bin/env bash
# The whole test suite, as CI runs it: Rust unit, property and integration tests; the interop
# suite with real WinRM clients (pypsrp, pywinrm) against a running `replica-sim serve`; the
# browser test of the live page (when Chromium is installed); short bounded fuzz runs.
set -euo pipefail
cd "$(dirname "$0")/.."
# Everything is also kept in a log, so the last line can add up what ran.
log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "== cargo build (release binaries used by the interop tests)"
cargo build --release --locked -p replica-sim -p replica-conformance

echo "== cargo test"
cargo test --workspace --locked 2>&1 | tee -a "$log"

echo "== interop: pypsrp and pywinrm against replica-sim serve"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/interop/requirements.txt
REPLICA_SIM_BIN="$PWD/target/release/replica-sim" .venv/bin/python -m pytest -q tests/interop 2>&1 | tee -a "$log"

echo "== browser: the live page /_replica/ui in headless Chromium"
# Opens the page, drives a failback through WS-Management, checks the page shows it live, and
# saves screenshots in tests/browser/out/. Without Chromium: fails under CI=true, skips otherwise.
REPLICA_SIM_BIN="$PWD/target/release/replica-sim" .venv/bin/python tests/browser/ui_e2e.py

echo "== soak: a million mixed WS-Management calls with a consistency check (release binary)"
# Two threads into one world through the dispatcher: the journal counts every call once, every
# accepted transition starts and ends exactly one job, no VM ever runs two jobs (about 30 s).
# The bounded fuzz run is part of `cargo test` above (sim/src/fuzz.rs, sim/src/wsman/fuzz.rs,
# a few seconds); a long one: REPLICA_FUZZ_CASES=200000 cargo test --release -p replica-sim fuzz
target/release/replica-sim soak --calls 1000000

# Every stage above stops the script on failure (set -e, pipefail), so reaching here means all
# passed: Rust tests + pytest tests + the browser test + the soak.
rust=$(grep -oE 'test result: ok\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
py=$(grep -oE '^[0-9]+ passed' "$log" | tail -1 | awk '{print $1 + 0}')
echo "total: $((rust + py + 2)) passed, 0 failed"
