"""Starts `replica-sim serve` for the interop tests: one simulator per test, on loopback port 0.

The binary is $REPLICA_SIM_BIN, else target/release/replica-sim (build it with
`cargo build --release -p replica-sim`). Each simulator prints one JSON line with its hosts'
URLs; it is stopped (SIGTERM, then SIGKILL) when the test ends.
"""

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = Path(__file__).resolve().parent / "examples"
sys.path.insert(0, str(Path(__file__).resolve().parent))

# The clients go through requests, which honours proxy variables: never for loopback.
for _var in ("NO_PROXY", "no_proxy"):
    os.environ[_var] = ",".join(filter(None, [os.environ.get(_var, ""), "127.0.0.1", "localhost"]))


def binary():
    path = Path(os.environ.get("REPLICA_SIM_BIN") or ROOT / "target" / "release" / "replica-sim")
    if not path.is_file():
        pytest.fail(f"{path} not found: run `cargo build --release -p replica-sim` or set REPLICA_SIM_BIN")
    return str(path)


class Sim:
    """A running `replica-sim serve`: `urls[host]` is http://127.0.0.1:PORT/wsman."""

    def __init__(self, *args, seed=1):
        self.proc = subprocess.Popen(
            [binary(), "serve", "--listen", "127.0.0.1:0", "--seed", str(seed), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 15)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.stop()
            raise RuntimeError(f"replica-sim did not start: {self.proc.stderr.read()[-2000:]}")
        announced = json.loads(line)
        assert announced["ready"] is True
        self.urls = announced["hosts"]
        self.primary = self.urls["HV-PRIMARY"]
        self.replica = self.urls["HV-REPLICA"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()


@pytest.fixture
def start_sim():
    """Starts simulators with extra `serve` arguments; all are stopped after the test."""
    started = []

    def start(*args, seed=1):
        sim = Sim(*args, seed=seed)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def sim(start_sim):
    """The default simulator: default topology, default pace, admin:admin."""
    return start_sim()


def run_example(name, *argv, timeout=45):
    """Runs tests/interop/examples/NAME as the README shows it; returns its stdout."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(EXAMPLES / name), *argv],
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{name} failed after {time.monotonic() - started:.1f}s:\n{done.stdout}\n{done.stderr}"
    return done.stdout
