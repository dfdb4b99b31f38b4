"""pywinrm with transport="ntlm" (NTLM with message encryption, its default over HTTP) drives
failover and failback against a running `replica-sim serve`:
the README's example as it is, then the walks step by step."""

from conftest import run_example
from wmi import PywinrmHost, initiate_failback, planned_failover_reverse_failback


def test_readme_example_runs_initiate_failback(sim):
    hostport = sim.replica.split("//")[1].split("/")[0]
    out = run_example("pywinrm_failback.py", hostport)
    lines = out.splitlines()
    assert lines[0] == "web-01 on HV-REPLICA: ReplicationMode 2, ReplicationState 3"
    failback = [line for line in lines if line.strip().startswith("Initiate Failback:")]
    assert "ReplicationState 13" in failback[0]
    assert failback[-1].strip().startswith("Initiate Failback: JobState 7, ReplicationState 14")


def test_planned_failover_commit_reverse_failback(start_sim):
    sim = start_sim("--clock", "realtime:3")
    planned_failover_reverse_failback(PywinrmHost(sim.primary), PywinrmHost(sim.replica))


def test_initiate_failback_at_the_default_pace(sim):
    replica = PywinrmHost(sim.replica)
    job = initiate_failback(replica)
    assert replica.get("Msvm_ConcreteJob", InstanceID=job)["JobState"] == "7"
