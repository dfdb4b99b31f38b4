"""Starts `replica-sim serve` for the interop tests: one simulator per test, on loopback port 0,
through the `replica_sim` package (python/): the binary its wheel installed in this venv, or
$REPLICA_SIM_BIN. It waits for the ready line with the hosts' URLs and stops the simulator
(SIGTERM, then SIGKILL) when the test ends. Tests that share one simulator per session use the
package's `replica_sim` fixture instead (examples/test_pytest_failback.py).
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from replica_sim import Simulator

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = Path(__file__).resolve().parent / "examples"
sys.path.insert(0, str(Path(__file__).resolve().parent))

# The clients go through requests, which honours proxy variables: never for loopback.
for _var in ("NO_PROXY", "no_proxy"):
    os.environ[_var] = ",".join(filter(None, [os.environ.get(_var, ""), "127.0.0.1", "localhost"]))


class Sim(Simulator):
    """A running `replica-sim serve`: `urls[host]` is http://127.0.0.1:PORT/wsman."""

    def __init__(self, *args, seed=1):
        super().__init__(seed=seed, args=args)
        self.start()
        self.urls = self.hosts
        self.primary = self.urls["HV-PRIMARY"]
        self.replica = self.urls["HV-REPLICA"]


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
