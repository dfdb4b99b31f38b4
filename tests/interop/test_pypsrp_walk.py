"""pypsrp at its defaults (WSMan with host, port, ssl=False, user and password: Negotiate with
message encryption) drives failover and failback against a running `replica-sim serve`:
the README's example as it is, then the walks step by step."""

from conftest import run_example
from wmi import PypsrpHost, assert_visible_progress, initiate_failback, planned_failover_reverse_failback, vm_ref


def test_readme_example_runs_the_whole_walk(sim):
    # Endpoints as a URL and as HOST:PORT.
    out = run_example("pypsrp_failback.py", sim.replica, sim.primary.split("//")[1].split("/")[0])
    assert "Reverse Replication: JobState 3 -> 4 -> 7" in out
    before, after = out.split("app-01 after:")
    # Reversed in the middle, back where it started at the end.
    assert "primary: ReplicationMode 2, ReplicationState 3" in before
    assert "replica: ReplicationMode 1, ReplicationState 3" in before
    assert "primary: ReplicationMode 1, ReplicationState 3" in after
    assert "replica: ReplicationMode 2, ReplicationState 3" in after


def test_planned_failover_commit_reverse_failback(start_sim):
    sim = start_sim("--clock", "realtime:3")
    planned_failover_reverse_failback(PypsrpHost(sim.primary), PypsrpHost(sim.replica))


def test_initiate_failback_at_the_default_pace(sim):
    replica = PypsrpHost(sim.replica)
    job = initiate_failback(replica)
    # The ended job stays readable, by WQL and by Get on the reference the method returned.
    assert replica.job(job)["JobState"] == "7"
    got = replica.get("Msvm_ConcreteJob", InstanceID=job, __cimnamespace="root/virtualization/v2")
    assert (got["JobState"], got["PercentComplete"]) == ("7", "100")


def test_get_and_wrong_state_refusal(sim):
    primary = PypsrpHost(sim.primary)
    vm = primary.vm("app-01")
    got = primary.get("Msvm_ComputerSystem", CreationClassName="Msvm_ComputerSystem", Name=vm["Name"])
    assert got == vm
    # CommitFailover on a VM that never failed over: refused at once with 32775, no job.
    code, job, _ = primary.call(primary.service(), "CommitFailover", ComputerSystem=vm_ref(vm["Name"]))
    assert (code, job) == (32775, None)


def test_polling_every_100ms_sees_the_job_run(sim):
    replica = PypsrpHost(sim.replica)
    vm = replica.vm("db-01")
    code, job, _ = replica.call(replica.service(), "InitiateFailover", ComputerSystem=vm_ref(vm["Name"]))
    assert code == 4096
    seen, _ = replica.wait(job)
    assert_visible_progress(seen)
