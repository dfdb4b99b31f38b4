"""The pytest plugin, run on small test files with pytester: a world per test, the marker and
options, the journal on failure, and pytest-xdist."""

import pytest

pytest_plugins = ["pytester"]

HELPERS = '''
import base64, urllib.request

def post_wsman(url):
    """A raw POST with Basic auth: not SOAP, so the simulator journals a rejected call."""
    auth = base64.b64encode(b"admin:admin").decode()
    # WS-Management's content type (without it WinRM, and the simulator, answer 415); the body
    # is not SOAP, so the call is journalled as rejected.
    headers = {"Authorization": "Basic " + auth, "Content-Type": "application/soap+xml;charset=UTF-8"}
    request = urllib.request.Request(url, data=b"<x/>", method="POST", headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        opener.open(request, timeout=10)
    except urllib.error.HTTPError as e:
        return e.code
'''


def test_each_test_gets_a_fresh_world_of_one_simulator(pytester):
    pytester.makepyfile(HELPERS + '''
import pytest

seen = {}

@pytest.mark.parametrize("n", [1, 2])
def test_world(replica_sim, replica_sim_server, n):
    assert replica_sim.name.startswith(f"test_world-{n}-")
    assert replica_sim.control.journal_entries() == []
    assert replica_sim.control.faults() == []
    replica_sim.control.add_fault("host_down", host="HV-REPLICA")
    assert post_wsman(replica_sim.hosts["HV-REPLICA"]) == 500
    assert len(replica_sim.control.journal_entries()) == 1
    seen.setdefault("pids", set()).add(replica_sim_server.pid)
    assert len(seen["pids"]) == 1  # one simulator for the session
    # Only this test's world (and the default one) exists: the previous test's is gone.
    assert sorted(replica_sim_server.control.worlds()) == sorted(["default", replica_sim.name])
''')
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_marker_and_options(pytester):
    pytester.makefile(".toml", one_host='''
[[hosts]]
name = "HV-ONLY"
''')
    pytester.makeini('''
[pytest]
replica_sim_clock = manual
replica_sim_seed = 11
''')
    pytester.makepyfile('''
import pytest

def test_session_settings(replica_sim):
    state = replica_sim.control.state()
    assert (state["clock"], state["seed"]) == ({"mode": "manual"}, 11)

@pytest.mark.replica_sim(topology="one_host.toml", seed=5, clock="realtime:10")
def test_marker(replica_sim):
    state = replica_sim.control.state()
    assert list(state["hosts"]) == ["HV-ONLY"]
    assert (state["clock"]["mode"], state["seed"]) == ("realtime", 5)
''')
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)
    # The command line wins over the ini file.
    pytester.makepyfile(test_seed='''
def test_seed(replica_sim):
    assert replica_sim.control.state()["seed"] == 99
''')
    pytester.runpytest_subprocess("-p", "no:cacheprovider", "--replica-sim-seed=99", "test_seed.py").assert_outcomes(passed=1)


def test_a_failing_test_reports_its_worlds_journal(pytester):
    pytester.makepyfile(HELPERS + '''
def test_fails(replica_sim):
    post_wsman(replica_sim.hosts["HV-PRIMARY"])
    assert False, "the DR tool did the wrong thing"

def test_passes(replica_sim):
    post_wsman(replica_sim.hosts["HV-PRIMARY"])
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*- replica-sim journal (world test_fails-*) -*",
        "#1 * HV-PRIMARY Rejected fault=w:SchemaValidationError http=500",
    ])
    assert result.stdout.str().count("replica-sim journal") == 1  # not for the passing test


def test_parallel_with_xdist(pytester):
    pytest.importorskip("xdist")
    pytester.makepyfile(HELPERS + '''
import pytest

@pytest.mark.parametrize("n", range(6))
def test_parallel(replica_sim, n):
    replica_sim.control.add_fault("host_down", host="HV-REPLICA")
    post_wsman(replica_sim.hosts["HV-REPLICA"])
    assert len(replica_sim.control.journal_entries()) == 1
    assert len(replica_sim.control.faults()) == 1
''')
    pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2").assert_outcomes(passed=6)


def test_tests_that_do_not_ask_start_no_simulator(pytester):
    pytester.makepyfile('''
def test_plain():
    import replica_sim.simulator as s
    assert len(s._running) == 0
''')
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_a_refused_marker_errors_with_the_servers_message_and_frees_the_world(pytester):
    pytester.makepyfile('''
import pytest

@pytest.mark.replica_sim(topology_toml="[[hosts]]\\nname = 7")
def test_bad(replica_sim):
    pass

def test_after(replica_sim, replica_sim_server):
    assert sorted(replica_sim_server.control.worlds()) == sorted(["default", replica_sim.name])
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*ControlError: POST /_replica/v1/reset: 400 *"])
