"""The pytest plugin (entry point `pytest11`, loaded by any pytest in an environment that has the
package): the `replica_sim` fixture, its marker and options. docs/pytest.md shows it in use.

* One simulator per session (`replica_sim_server`), started the first time a test asks for it
  and stopped when the session ends. Under pytest-xdist every worker has a session of its own,
  hence a simulator of its own.
* Each test gets a fresh world of its own in it (`replica_sim`, a `replica_sim.World`), named
  after the test: its host URLs (`/worlds/NAME/wsman`) and its control client only touch
  that world, and it is removed after the test.
* `@pytest.mark.replica_sim(topology=..., topology_toml=..., seed=..., clock=..., profile=...)`
  sets up a test's world differently; `--replica-sim-topology/-clock/-seed` (or the ini keys
  `replica_sim_topology/_clock/_seed/_args`) configure the session's simulator.
* When a test fails, the journal of its world (every WS-Management call it made) is attached to
  the report as the section "replica-sim journal".
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any, Dict, Generator, Iterator, List, Optional

import pytest

from .control import ControlError
from .simulator import Simulator, World

WORLD = pytest.StashKey[World]()
MARKER_ARGS = ("topology", "topology_toml", "seed", "clock", "profile")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("replica_sim", "replica-sim (Hyper-V Replica simulator)")
    group.addoption("--replica-sim-topology", metavar="FILE",
                    help="topology file (TOML) of the session's simulator; default: its built-in topology")
    group.addoption("--replica-sim-clock", metavar="MODE",
                    help="clock of the session's simulator: realtime[:SPEED], manual or polls:N")
    group.addoption("--replica-sim-seed", metavar="N", type=int, help="seed of the session's simulator")
    parser.addini("replica_sim_topology", "topology file (TOML) of the session's simulator, "
                  "relative to the ini file")
    parser.addini("replica_sim_clock", "clock of the session's simulator")
    parser.addini("replica_sim_seed", "seed of the session's simulator")
    parser.addini("replica_sim_args", "more `replica-sim serve` flags, e.g. --tls", type="args")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "replica_sim(topology=None, topology_toml=None, seed=None, clock=None, profile=None): "
        "set up the test's replica-sim world: a topology file (relative to the test file) or "
        "TOML text, a seed, a clock mode (manual, realtime:SPEED, polls:N), a behaviour profile",
    )


def _setting(config: pytest.Config, name: str) -> Optional[str]:
    value = config.getoption(f"--replica-sim-{name}")
    if value is not None:
        return str(value)
    return str(config.getini(f"replica_sim_{name}") or "") or None


@pytest.fixture(scope="session")
def replica_sim_server(pytestconfig: pytest.Config) -> Iterator[Simulator]:
    """The session's `replica_sim.Simulator` (default world untouched by `replica_sim`)."""
    topology = _setting(pytestconfig, "topology")
    if topology and pytestconfig.getoption("--replica-sim-topology") is None:
        # From the ini file: relative to it, like pytest's own ini paths.
        base = pytestconfig.inipath.parent if pytestconfig.inipath else pytestconfig.rootpath
        topology = str(base / topology)
    seed = _setting(pytestconfig, "seed")
    sim = Simulator(topology=topology, clock=_setting(pytestconfig, "clock"),
                    seed=int(seed) if seed is not None else None,
                    args=list(pytestconfig.getini("replica_sim_args")))
    with pytest.MonkeyPatch.context() as env, sim:
        # WinRM clients go through requests, which sends even loopback traffic to a configured
        # HTTP(S)_PROXY unless NO_PROXY says otherwise; the simulator is always on loopback.
        for var in ("NO_PROXY", "no_proxy"):
            env.setenv(var, ",".join(filter(None, [os.environ.get(var, ""), "127.0.0.1", "localhost"])))
        yield sim


def world_name(nodeid: str) -> str:
    """A world name for a test id: readable (the test's name and parameters), unique (a hash
    of the whole id, file included) and within the server's rule (1-64 of A-Z a-z 0-9 - _)."""
    path, _, name = nodeid.partition("::")
    readable = re.sub(r"[^A-Za-z0-9_-]+", "-", name or Path(path).stem).strip("-")
    digest = hashlib.sha1(nodeid.encode()).hexdigest()[:8]
    return f"{readable[:55]}-{digest}"


@pytest.fixture
def replica_sim(request: pytest.FixtureRequest, replica_sim_server: Simulator) -> Iterator[World]:
    """A fresh world of the session's simulator for this test (`replica_sim.World`):
    `.hosts` (host name -> WS-Management URL in this world), `.credentials`, `.control`,
    `.endpoint(host)` (host, port, path, ssl for pypsrp's WSMan)."""
    world = replica_sim_server.world(world_name(request.node.nodeid))
    try:
        # Left over from an earlier run of the same test in this session (pytest-rerunfailures).
        world.control.delete_world(world.name)
    except ControlError as e:
        if e.status != 404:
            raise
    marker = request.node.get_closest_marker("replica_sim")
    options: Dict[str, Any] = {}
    if marker is not None:
        if marker.args:
            raise pytest.UsageError("@pytest.mark.replica_sim takes keyword arguments only: " + ", ".join(MARKER_ARGS))
        unknown = sorted(set(marker.kwargs) - set(MARKER_ARGS))
        if unknown:
            raise pytest.UsageError(f"@pytest.mark.replica_sim: unknown {unknown}; expected {', '.join(MARKER_ARGS)}")
        options = dict(marker.kwargs)
    topology_toml = options.get("topology_toml")
    if options.get("topology") is not None:
        if topology_toml is not None:
            raise pytest.UsageError("@pytest.mark.replica_sim: topology or topology_toml, not both")
        path = Path(options["topology"])
        topology_toml = (path if path.is_absolute() else Path(request.node.path).parent / path).read_text("utf-8")
    try:
        if topology_toml is not None or options.get("seed") is not None or options.get("profile") is not None:
            world.control.reset(topology_toml=topology_toml, seed=options.get("seed"), profile=options.get("profile"))
        if options.get("clock") is not None:
            world.control.set_clock(str(options["clock"]))
        world.control.health()  # creates the world now (a new world's clock starts when it is made)
        request.node.stash[WORLD] = world
        yield world
    finally:
        try:
            # Worlds are capped per simulator (max_worlds, 256 by default): give this one back,
            # also when the marker's setup was refused.
            world.control.delete_world(world.name)
        except ControlError as e:
            if e.status != 404:
                raise


def format_journal(entries: List[Dict[str, Any]]) -> str:
    """One line per call: sequence number, virtual time, host, what was called and the answer."""
    lines = []
    for e in entries:
        what = ".".join(filter(None, [e.get("class"), e.get("method")])) or ""
        parts = [f"#{e.get('seq')}", str(e.get("at_rfc3339", e.get("at"))), str(e.get("host")),
                 str(e.get("operation")), what]
        for key in ("vm", "code", "job", "rule", "reason", "fault"):
            if e.get(key) is not None:
                parts.append(f"{key}={e[key]}")
        if e.get("faults"):
            parts.append("faults=" + ",".join(e["faults"]))
        parts.append(f"http={e.get('http_status')}")
        lines.append(" ".join(p for p in parts if p))
    return "\n".join(lines) if lines else "(no WS-Management calls)"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: "pytest.CallInfo[None]") -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    # Setup and call only: by the teardown report the world has been removed.
    if not report.failed or report.when == "teardown":
        return
    world = item.stash.get(WORLD, None)
    if world is None:
        return
    try:
        text = format_journal(world.control.journal_entries())
    except Exception as e:  # the simulator may be what broke; say so instead of hiding the report
        text = f"(journal unavailable: {e})"
    report.sections.append((f"replica-sim journal (world {world.name})", text))
