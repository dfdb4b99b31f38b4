"""`Simulator`: a `replica-sim serve` process on free loopback ports, for one test or a session."""

from __future__ import annotations

import atexit
import json
import os
import queue
import re
import shutil
import subprocess
import sysconfig
import tempfile
import threading
import urllib.parse
from pathlib import Path
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Set, Tuple, Union

from .control import Control

__all__ = ["Simulator", "SimulatorError", "World", "Endpoint", "find_binary"]

StrPath = Union[str, "os.PathLike[str]"]

_EXE = "replica-sim.exe" if os.name == "nt" else "replica-sim"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_FINGERPRINT = re.compile(r"sha256=([0-9A-F]{2}(?::[0-9A-F]{2}){31})")
_WORLD_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class SimulatorError(RuntimeError):
    """The simulator could not be found or did not start; the message ends with its stderr."""


def find_binary() -> str:
    """The `replica-sim` executable: $REPLICA_SIM_BIN, else the one this package's wheel put in
    the interpreter's scripts directory (the venv's bin/), else the user scheme's, else PATH."""
    explicit = os.environ.get("REPLICA_SIM_BIN")
    if explicit:
        if not Path(explicit).is_file():
            raise SimulatorError(f"REPLICA_SIM_BIN={explicit} is not a file")
        return explicit
    # The interpreter's own scripts dir first: a venv's pytest must not pick up another install.
    candidates = [sysconfig.get_path("scripts")]
    try:
        candidates.append(sysconfig.get_path("scripts", f"{os.name}_user"))
    except KeyError:
        pass
    for directory in candidates:
        path = Path(directory) / _EXE if directory else None
        if path is not None and path.is_file():
            return str(path)
    found = shutil.which(_EXE)
    if found:
        return found
    raise SimulatorError(f"`{_EXE}` not found in {candidates[0]} nor on PATH: `pip install ./python` "
                         "from a clone of the repository, or set REPLICA_SIM_BIN")


class Endpoint(NamedTuple):
    """One host's WS-Management endpoint, split the way WinRM clients take it
    (pypsrp: `WSMan(host, port=port, path=path, ssl=ssl)`)."""

    url: str
    host: str
    port: int
    path: str
    ssl: bool


def endpoint(url: str) -> Endpoint:
    parts = urllib.parse.urlsplit(url)
    return Endpoint(url, parts.hostname or "", parts.port or 0, parts.path.lstrip("/"), parts.scheme == "https")


class World:
    """One world of a running simulator: its own VMs, jobs, clock, faults and journal.

    `hosts` maps host names to WS-Management URLs that land in this world
    (`http://127.0.0.1:PORT/worlds/NAME/wsman`; the default world keeps `/wsman`), so an
    unmodified WinRM client given the URL drives this world only. `control` is this world's
    control API.
    """

    def __init__(self, simulator: "Simulator", name: Optional[str]):
        if name is not None and not _WORLD_NAME.match(name):
            raise ValueError(f"world name {name!r} must be 1-64 characters of A-Z, a-z, 0-9, - and _")
        self.simulator = simulator
        self.name = name or "default"
        path = f"/worlds/{name}/wsman" if name else "/wsman"
        self.hosts: Dict[str, str] = {
            host: urllib.parse.urlsplit(url)._replace(path=path).geturl() for host, url in simulator.hosts.items()
        }
        self.control: Control = simulator.control.in_world(name)

    @property
    def credentials(self) -> Tuple[str, str]:
        """(user, password) of the simulator's Basic credentials."""
        return self.simulator.credentials

    def endpoint(self, host: str) -> Endpoint:
        """`hosts[host]` split into scheme, host, port and path."""
        return endpoint(self.hosts[host])

    def __repr__(self) -> str:
        return f"<replica_sim.World {self.name} {sorted(self.hosts)}>"


# Every simulator still running when the interpreter exits is stopped: a forgotten `stop()` or
# an interrupted session must not leave a server behind. Strong references: a Simulator that is
# dropped without stop() still gets stopped here.
_running: "Set[Simulator]" = set()


@atexit.register
def _stop_all() -> None:
    for sim in list(_running):
        sim.stop()


class Simulator:
    """Runs `replica-sim serve --listen 127.0.0.1:0` (every host on a free port) until stopped.

    >>> with Simulator(clock="manual", seed=7) as sim:
    ...     sim.hosts["HV-REPLICA"]      # 'http://127.0.0.1:40123/wsman'
    ...     sim.control.advance("2s")

    Options map to `serve` flags: `topology` (a TOML file) or `topology_toml` (its text),
    `seed`, `clock` (`realtime`, `realtime:SPEED`, `manual`, `polls:N`), `credentials` (the
    Basic user and password clients use), `read_only_credentials` / `denied_credentials`,
    `control_token`, `tls` (self-signed HTTPS) or `tls_cert` + `tls_key`, `limits`
    (`{"max_connections": 256}`), `state_file`, and `args` for anything else.

    `start()` (or `with`) returns once the simulator printed its ready line; if it exits or
    stays silent for `start_timeout` seconds, SimulatorError carries its stderr. `stop()`
    sends SIGTERM, waits up to `stop_timeout` seconds, then kills it.
    """

    def __init__(
        self,
        *,
        topology: Optional[StrPath] = None,
        topology_toml: Optional[str] = None,
        seed: Optional[int] = None,
        clock: Optional[str] = None,
        credentials: Tuple[str, str] = ("admin", "admin"),
        read_only_credentials: Sequence[Tuple[str, str]] = (),
        denied_credentials: Sequence[Tuple[str, str]] = (),
        control_token: Optional[str] = None,
        tls: bool = False,
        tls_cert: Optional[StrPath] = None,
        tls_key: Optional[StrPath] = None,
        limits: Optional[Mapping[str, int]] = None,
        state_file: Optional[StrPath] = None,
        args: Sequence[str] = (),
        binary: Optional[StrPath] = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ):
        if topology is not None and topology_toml is not None:
            raise ValueError("give topology (a file) or topology_toml (its text), not both")
        self.credentials: Tuple[str, str] = (credentials[0], credentials[1])
        self.control_token = control_token
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._binary = str(binary) if binary is not None else None
        self._topology_toml = topology_toml
        flags: List[str] = []
        if topology is not None:
            flags += ["--topology", os.fspath(topology)]
        if seed is not None:
            flags += ["--seed", str(int(seed))]
        if clock is not None:
            flags += ["--clock", clock]
        flags += ["--credentials", ":".join(self.credentials)]
        flags += [f for user, pw in read_only_credentials for f in ("--read-only-credentials", f"{user}:{pw}")]
        flags += [f for user, pw in denied_credentials for f in ("--denied-credentials", f"{user}:{pw}")]
        if control_token is not None:
            flags += ["--control-token", control_token]
        if tls or tls_cert is not None:
            flags.append("--tls")
        if tls_cert is not None or tls_key is not None:
            if tls_cert is None or tls_key is None:
                raise ValueError("tls_cert and tls_key go together")
            flags += ["--tls-cert", os.fspath(tls_cert), "--tls-key", os.fspath(tls_key)]
        flags += [f for name, value in (limits or {}).items() for f in ("--limit", f"{name}={value}")]
        if state_file is not None:
            flags += ["--state-file", os.fspath(state_file)]
        self._flags = flags + list(args)
        self._proc: Optional["subprocess.Popen[bytes]"] = None
        self._scratch: Optional["tempfile.TemporaryDirectory[str]"] = None
        self.hosts: Dict[str, str] = {}
        self.fingerprint: Optional[str] = None
        self.log_path: Optional[Path] = None

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def command(self) -> List[str]:
        """The command line `start()` runs (the topology text becomes a file in a scratch dir)."""
        return [self._binary or find_binary(), "serve", "--listen", "127.0.0.1:0", *self._flags]

    def start(self) -> "Simulator":
        if self._proc is not None:
            raise SimulatorError("already started")
        command = self.command
        self._scratch = tempfile.TemporaryDirectory(prefix="replica-sim-")
        scratch = Path(self._scratch.name)
        if self._topology_toml is not None:
            (scratch / "topology.toml").write_text(self._topology_toml, encoding="utf-8")
            command[4:4] = ["--topology", str(scratch / "topology.toml")]
        # stderr goes to a file, not a pipe: nobody reads it while tests run, and a full pipe
        # would block the server's logging (and with it the server) mid-session.
        self.log_path = scratch / "stderr.log"
        env = dict(os.environ, NO_COLOR="1")
        try:
            with open(self.log_path, "ab") as log:
                self._proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                              stderr=log, env=env)
        except OSError as e:
            self.stop()  # removes the scratch dir
            raise SimulatorError(f"cannot run {command[0]}: {e}") from e
        _running.add(self)
        try:
            self._await_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _await_ready(self) -> None:
        """Reads the one ready line, `{"ready":true,"hosts":{NAME: URL}}`, within start_timeout."""
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        stdout = proc.stdout
        lines: "queue.Queue[bytes]" = queue.Queue()
        # A thread, not select(): reading a pipe with a deadline the same way on every OS.
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=self.start_timeout)
        except queue.Empty:
            raise SimulatorError(f"replica-sim printed no ready line within {self.start_timeout:g}s"
                                 f"{self._stderr_tail()}") from None
        try:
            announced = json.loads(line)
            hosts = announced["hosts"]
            assert announced["ready"] is True and isinstance(hosts, dict)
        except (ValueError, KeyError, AssertionError, TypeError):
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                pass
            what = f"printed {line[:200]!r}" if line else f"exited with {proc.returncode}"
            raise SimulatorError(f"replica-sim did not start: it {what}{self._stderr_tail()}") from None
        self.hosts = {str(name): str(url) for name, url in hosts.items()}
        first = next(iter(self.hosts.values()), "")
        if first.startswith("https://"):
            # Logged before the ready line, so it is in the file by now.
            found = _FINGERPRINT.search(_ANSI.sub("", self.stderr()))
            self.fingerprint = found.group(1) if found else None

    def stop(self) -> None:
        """Stops the simulator (SIGTERM, then SIGKILL after stop_timeout); safe to call twice."""
        proc, self._proc = self._proc, None
        _running.discard(self)
        self.hosts = {}  # later calls fail with "not running", not with a refused connection
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        if self._scratch is not None:
            self._last_stderr = self.stderr()
            self._scratch.cleanup()
            self._scratch = None

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> Optional[int]:
        return self._proc.pid if self._proc is not None else None

    def stderr(self) -> str:
        """The simulator's log so far (its stderr), also after it stopped."""
        if self.log_path is not None and self._scratch is not None and self.log_path.exists():
            return self.log_path.read_text("utf-8", "replace")
        return getattr(self, "_last_stderr", "")

    def _stderr_tail(self, lines: int = 20) -> str:
        tail = self.stderr().strip().splitlines()[-lines:]
        return ":\n" + "\n".join(tail) if tail else " (no stderr)"

    # --- what tests use ------------------------------------------------------------------

    @property
    def control(self) -> Control:
        """The control API of the default world (through the first host's listener)."""
        if not self.hosts:
            raise SimulatorError("the simulator is not running: use start() or `with Simulator() as sim`")
        base = next(iter(self.hosts.values()))
        return Control(base, token=self.control_token, fingerprint=self.fingerprint)

    def world(self, name: Optional[str] = None) -> World:
        """A world by name (created from the simulator's topology on first use; None: the
        default world). Worlds are isolated: parallel tests each drive their own."""
        if not self.hosts:
            raise SimulatorError("the simulator is not running: use start() or `with Simulator() as sim`")
        return World(self, name)

    def endpoint(self, host: str) -> Endpoint:
        """`hosts[host]` split into scheme, host, port and path."""
        return endpoint(self.hosts[host])

    def __repr__(self) -> str:
        state = f"running, pid {self.pid}" if self.running else "stopped"
        return f"<replica_sim.Simulator {state} {self.hosts}>"
