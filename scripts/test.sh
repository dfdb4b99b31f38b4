#!/usr/bin/env bash
# The whole test suite, as CI runs it: Rust unit, property and integration tests; the Python
# package (python/) built as a wheel, installed into a fresh venv and tested; the interop suite
# with real WinRM clients (pypsrp, pywinrm) against `replica-sim serve` started through that
# package; the browser test of the live page (when Chromium is installed); short bounded fuzz runs.
set -euo pipefail
cd "$(dirname "$0")/.."
# Everything is also kept in a log, so the last line can add up what ran.
log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "== the Python package: a wheel carrying the release replica-sim binary (maturin)"
# The one release build: maturin compiles the replica-sim package alone into the workspace's
# target/, so target/release/replica-sim (the browser test, the soak) is the wheel's binary.
# Nothing here runs a release replica-conformance: building it (alone, or with -p replica-sim)
# unifies more features into shared dependencies (syn, tower, hyper-util) and compiles nearly
# everything a second time, minutes on CI's two cores; clippy and `cargo test` build it already.
venv=target/venv
rm -rf "$venv" target/ci-wheels
python3 -m venv "$venv"
"$venv/bin/pip" wheel --quiet --disable-pip-version-check --no-deps --wheel-dir target/ci-wheels ./python
ls -l target/ci-wheels/*.whl

# Same package, same flags: finds the wheel's build fresh (a second compile would show here).
cargo build --release --locked -p replica-sim

echo "== cargo test"
cargo test --workspace --locked 2>&1 | tee -a "$log"

echo "== python: the wheel in a fresh venv, the package's own tests (python/tests)"
"$venv/bin/pip" install --quiet --disable-pip-version-check target/ci-wheels/*.whl \
  -r python/tests/requirements.txt -r tests/interop/requirements.txt
# The venv's own replica-sim (from the wheel), not a path from the environment.
unset REPLICA_SIM_BIN
"$venv/bin/python" -m pytest -q python/tests 2>&1 | tee -a "$log"

echo "== interop: pypsrp and pywinrm against replica-sim serve (started by the replica_sim package)"
"$venv/bin/python" -m pytest -q tests/interop 2>&1 | tee -a "$log"

echo "== browser: the live page /_replica/ui in headless Chromium"
# Opens the page, drives a failback through WS-Management, checks the page shows it live, and
# saves screenshots in tests/browser/out/. Without Chromium: fails under CI=true, skips otherwise.
# Its output goes to the log too: a `SKIP:` line there is counted as skipped, not passed.
REPLICA_SIM_BIN="$PWD/target/release/replica-sim" "$venv/bin/python" tests/browser/ui_e2e.py 2>&1 | tee -a "$log"

echo "== soak: a million mixed WS-Management calls with a consistency check (release binary)"
# Two threads into one world through the dispatcher: the journal counts every call once, every
# accepted transition starts and ends exactly one job, no VM ever runs two jobs (about 30 s).
# The bounded fuzz run is part of `cargo test` above (sim/src/fuzz.rs, wsman/src/fuzz.rs,
# a few seconds); a long one: REPLICA_FUZZ_CASES=200000 cargo test --release -p replica-wsman -p replica-sim fuzz
target/release/replica-sim soak --calls 1000000

# Every stage above stops the script on failure (set -e, pipefail), so reaching here means none
# failed. Skipped tests are counted as skipped, never as passed: cargo's `N ignored`, pytest's
# `N skipped` (both pytest runs' summary lines) and the browser test's `SKIP:` line.
# `{ grep || true; }` and awk: no match is a count of 0, not a failed pipeline (pipefail).
rust=$({ grep -oE 'test result: ok\. [0-9]+ passed; [0-9]+ failed; [0-9]+ ignored' "$log" || true; } |
  awk '{p += $4; i += $8} END {print p + 0, i + 0}')
read -r rust_passed rust_ignored <<<"$rust"
# pytest -q ends each run with one summary line, e.g. `35 passed, 2 skipped in 3.21s`.
read -r py_passed py_skipped < <(awk '/^[0-9]+ [a-z]+.* in [0-9.]+s/ {
  for (i = 1; i < NF; i++) { if ($(i + 1) ~ /^passed/) p += $i; if ($(i + 1) ~ /^skipped/) k += $i }
} END {print p + 0, k + 0}' "$log")
if grep -q '^SKIP: ' "$log"; then
  browser_passed=0 browser_skipped=1
else
  browser_passed=1 browser_skipped=0
fi
# + 1: the soak.
passed=$((rust_passed + py_passed + browser_passed + 1))
skipped=$((rust_ignored + py_skipped + browser_skipped))
echo "total: $passed passed, 0 failed, $skipped skipped"
