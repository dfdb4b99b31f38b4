"""`replica_sim.Simulator` and `Control` against the real binary (the one the wheel installed, or
$REPLICA_SIM_BIN): real processes, real HTTP on loopback."""

import base64
import os
import ssl
import urllib.request

import pytest

from replica_sim import Control, ControlError, Simulator, SimulatorError, find_binary

TWO_HOSTS = """
[[hosts]]
name = "HV-A"

[[hosts]]
name = "HV-B"

[[vms]]
name = "only-vm"
host = "HV-A"
power = "off"
replication = { replica_host = "HV-B", recovery_points = 1 }
"""


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def post_wsman(url, body=b"<x/>", user="admin", password="admin"):
    """A raw WS-Management POST (not SOAP: the simulator answers with a fault and journals it)."""
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Authorization": f"Basic {auth}", "Content-Type": "application/soap+xml;charset=UTF-8"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def test_find_binary_is_the_installed_one():
    assert os.access(find_binary(), os.X_OK)


def test_start_announce_and_stop():
    with Simulator(seed=7, clock="manual") as sim:
        assert set(sim.hosts) == {"HV-PRIMARY", "HV-REPLICA"}
        assert all(url.startswith("http://127.0.0.1:") and url.endswith("/wsman") for url in sim.hosts.values())
        assert sim.credentials == ("admin", "admin")
        health = sim.control.health()
        assert health["ok"] is True and health["world"] == "default"
        state = sim.control.state()
        assert state["seed"] == 7 and state["clock"] == {"mode": "manual"}
        pid = sim.pid
        assert alive(pid)
    assert not alive(pid) and not sim.running
    sim.stop()  # twice is fine


def test_no_process_left_when_the_test_body_fails():
    with pytest.raises(ZeroDivisionError):
        with Simulator() as sim:
            pid = sim.pid
            1 / 0
    assert not alive(pid)


def test_topology_text_credentials_and_errors_carry_the_servers_message():
    with Simulator(topology_toml=TWO_HOSTS, credentials=("ops", "s3cret")) as sim:
        assert set(sim.hosts) == {"HV-A", "HV-B"}
        assert post_wsman(sim.hosts["HV-A"], user="admin", password="admin") == 401
        assert post_wsman(sim.hosts["HV-A"], user="ops", password="s3cret") == 500  # a fault: authenticated
        with pytest.raises(ControlError) as e:
            sim.control.add_fault("return_code", code=32768, colour="blue")
        assert e.value.status == 400
        assert "unknown field `colour`" in e.value.message
        assert "unknown field `colour`" in str(e.value)
        with pytest.raises(ControlError) as e:
            sim.control.reset(topology_toml="[[hosts]]\nname = ")
        assert e.value.status == 400 and e.value.body["line"] == 2


def test_an_invalid_topology_fails_start_with_the_stderr_tail(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[hosts]]\nname = "HV-A"\ncolour = "blue"\n')
    with pytest.raises(SimulatorError) as e:
        Simulator(topology=bad).start()
    assert "exited with 2" in str(e.value)
    assert "colour" in str(e.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a FIFO to hold the simulator before its ready line")
def test_no_ready_line_in_time_stops_the_process(tmp_path):
    # A stand-in binary that never prints its ready line (the simulator refuses a FIFO as its
    # state file, so it can no longer be made to hang that way).
    silent = tmp_path / "silent-replica-sim"
    silent.write_text("#!/bin/sh\nexec sleep 600\n")
    silent.chmod(0o755)
    sim = Simulator(binary=silent, start_timeout=1.0)
    with pytest.raises(SimulatorError, match="no ready line within 1s"):
        sim.start()
    assert sim.pid is None and not sim.running


def test_worlds_are_isolated_and_reached_by_path():
    with Simulator(clock="manual") as sim:
        a, b = sim.world("a"), sim.world("b")
        assert a.hosts["HV-REPLICA"].endswith("/worlds/a/wsman")
        assert a.endpoint("HV-REPLICA").path == "worlds/a/wsman"
        rule = a.control.add_fault("host_down", host="HV-REPLICA")
        assert [f["id"] for f in a.control.faults()] == [rule["id"]]
        assert b.control.faults() == []
        assert post_wsman(a.hosts["HV-REPLICA"]) == 500
        assert [e["host"] for e in a.control.journal_entries()] == ["HV-REPLICA"]
        assert b.control.journal_entries() == []
        assert sim.control.journal_entries() == []  # the default world saw nothing
        a_now, b_now = a.control.clock()["now"], b.control.clock()["now"]
        a.control.advance("2s")
        assert (a.control.clock()["now"], b.control.clock()["now"]) == (a_now + 2000, b_now)
        assert set(sim.control.worlds()) == {"default", "a", "b"}
        sim.control.delete_world("a")
        assert set(sim.control.worlds()) == {"default", "b"}
        with pytest.raises(ValueError):
            sim.world("no spaces")


def test_control_token():
    with Simulator(control_token="t0ken") as sim:
        assert sim.control.health()["ok"]
        with pytest.raises(ControlError) as e:
            Control(sim.hosts["HV-PRIMARY"]).health()
        assert e.value.status == 401 and "control token" in e.value.message


def test_tls_pins_the_generated_certificate():
    with Simulator(tls=True) as sim:
        assert all(url.startswith("https://127.0.0.1:") for url in sim.hosts.values())
        assert sim.fingerprint and len(sim.fingerprint) == 95
        assert sim.endpoint("HV-PRIMARY").ssl is True
        assert sim.control.health()["ok"]
        wrong = Control(sim.hosts["HV-PRIMARY"], fingerprint="00:" * 31 + "00")
        with pytest.raises(ssl.SSLError, match="fingerprint"):
            wrong.health()


def test_journal_pages_and_clock():
    with Simulator(clock="manual") as sim:
        world = sim.world("paging")
        for _ in range(5):
            post_wsman(world.hosts["HV-PRIMARY"])
        page = world.control.journal(limit=2)
        assert len(page["entries"]) == 2 and page["more"] is True
        assert [e["seq"] for e in world.control.journal_entries()] == [1, 2, 3, 4, 5]
        assert [e["seq"] for e in world.control.journal_entries(since=3)] == [4, 5]
        before = world.control.clock()["now"]
        assert world.control.advance(1500)["now"] == before + 1500
        assert world.control.set_clock("realtime", speed=10)["clock"]["mode"] == "realtime"
        assert "fault_kinds" in world.control.coverage()
        assert world.control.diagram().startswith("stateDiagram")
        assert world.control.clear_faults() == 0


def test_a_binary_that_cannot_run(tmp_path):
    not_executable = tmp_path / "replica-sim"
    not_executable.write_text("")
    with pytest.raises(SimulatorError, match="cannot run"):
        Simulator(binary=not_executable).start()
