"""Methods and behaviour the class pages document (issue 16 §4), driven by pypsrp (an unmodified
third-party WinRM client, Basic auth, no message encryption) against a simulator on a manual
clock; each test has its own world, and time moves only through the control API's clock.
"""

import json
import urllib.error
import urllib.request
import uuid

import pytest

from wmi import PypsrpHost, V2

BUILD01 = "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B04"  # on HV-PRIMARY, not replicated
WEB01 = "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B02"  # on, Replicating, 4 recovery points
LONG = 60_000  # longer than any job of the default profile, shorter than its job retention (300 s)


class World:
    """One world of a running simulator: a pypsrp client per host and the control API."""

    def __init__(self, sim):
        self.name = "beh-" + uuid.uuid4().hex[:12]
        self.base = sim.replica.rsplit("/", 1)[0]
        self.hosts = {}
        for host, url in sim.urls.items():
            base = url.rsplit("/", 1)[0]
            self.hosts[host] = PypsrpHost(f"{base}/worlds/{self.name}/wsman", auth="basic")
        self.primary, self.replica = self.hosts["HV-PRIMARY"], self.hosts["HV-REPLICA"]

    def control(self, method, endpoint, body=None):
        req = urllib.request.Request(
            f"{self.base}/worlds/{self.name}/_replica/v1/{endpoint}",
            data=None if body is None else json.dumps(body).encode(), method=method,
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")

    def advance(self, ms):
        self.control("POST", "clock", {"advance_ms": ms})


def instance(cls, **props):
    """An embedded instance (CIM-XML INSTANCE) as a string parameter, as clients write one."""
    body = "".join(f'<PROPERTY NAME="{k}" TYPE="string"><VALUE>{v}</VALUE></PROPERTY>' for k, v in props.items())
    return f'<INSTANCE CLASSNAME="{cls}">{body}</INSTANCE>'


def vm_ref(guid):
    from wmi import Ref
    return Ref("Msvm_ComputerSystem", CreationClassName="Msvm_ComputerSystem", Name=guid)


@pytest.fixture
def world(start_sim):
    return World(start_sim("--clock", "manual"))


def test_modify_service_settings_is_served_and_used(world):
    replica = world.replica
    before = replica.one("SELECT * FROM Msvm_ReplicationServiceSettingData")
    assert (before["RecoveryServerEnabled"], before["HttpPort"]) == ("true", "80")
    code, job, _ = replica.call(replica.service(), "ModifyServiceSettings", SettingData=instance(
        "Msvm_ReplicationServiceSettingData", RecoveryServerEnabled="false", HttpPort=8080))
    assert code == 4096
    world.advance(LONG)
    assert replica.job(job)["JobState"] == "7"
    after = replica.one("SELECT * FROM Msvm_ReplicationServiceSettingData")
    assert (after["RecoveryServerEnabled"], after["HttpPort"]) == ("false", "8080")
    # The recovery server no longer accepts replication: enabling it towards HV-REPLICA fails.
    primary = world.primary
    code, _, _ = primary.call(primary.service(), "CreateReplicationRelationship",
                              ComputerSystem=vm_ref(BUILD01),
                              ReplicationSettingData=instance("Msvm_ReplicationSettingData",
                                                              RecoveryConnectionPoint="HV-REPLICA"))
    assert code == 32777
    # Out of the page's range: refused, nothing changes.
    code, _, _ = replica.call(replica.service(), "ModifyServiceSettings", SettingData=instance(
        "Msvm_ReplicationServiceSettingData", MonitoringInterval=60))
    assert code == 32773
    assert replica.one("SELECT * FROM Msvm_ReplicationServiceSettingData")["MonitoringInterval"] == "43200"


def job_state_change(host, job, requested):
    code, _, _ = host.call({"InstanceID": job}, "RequestStateChange", RequestedState=requested)
    return code


def test_job_suspend_start_and_unsupported_values(world):
    replica = world.replica
    vm = replica.vm("web-01")
    code, job, _ = replica.call(replica.service(), "InitiateFailover", ComputerSystem=vm_ref(vm["Name"]))
    assert code == 4096
    world.advance(LONG)
    code, job, _ = replica.call(replica.service(), "InitiateFailback", ComputerSystem=vm_ref(vm["Name"]))
    assert code == 4096
    assert job_state_change(replica, job, 2) == 4097  # Start: not suspended
    assert job_state_change(replica, job, 3) == 0  # Suspend
    world.advance(LONG)
    suspended = replica.job(job)
    assert suspended["JobState"] == "5"  # Suspended, long after its duration
    assert replica.vm("web-01")["ReplicationState"] == "13"  # still Failback in progress
    assert job_state_change(replica, job, 3) == 4097
    assert job_state_change(replica, job, 6) == 1  # Service: Not Supported
    assert job_state_change(replica, job, 42) == 5  # reserved: Invalid Parameter
    assert job_state_change(replica, job, 2) == 0  # Start
    assert replica.job(job)["JobState"] in ("3", "4")  # Starting (from Suspended) or Running
    world.advance(LONG)
    assert replica.job(job)["JobState"] == "7"
    assert replica.vm("web-01")["ReplicationState"] == "14"


def test_completed_with_warnings_through_a_fault(world):
    replica = world.replica
    world.control("POST", "faults", {"kind": "complete_with_warnings", "host": "HV-REPLICA",
                                     "method": "InitiateFailover", "description": "heartbeat lost",
                                     "count": 1})
    code, job, _ = replica.call(replica.service(), "InitiateFailover", ComputerSystem=vm_ref(WEB01))
    assert code == 4096
    world.advance(LONG)
    row = replica.job(job)
    # 32768 with ErrorCode 0: os-win's jobutils counts it a success, and the work is done.
    assert (row["JobState"], row["ErrorCode"], row["ErrorDescription"]) == ("32768", "0", "heartbeat lost")
    assert row["PercentComplete"] == "100"
    assert replica.vm("web-01")["ReplicationState"] == "5"  # Recovered
    # Unknown fields of the kind are refused by name, like every fault kind's.
    with pytest.raises(urllib.error.HTTPError):
        world.control("POST", "faults", {"kind": "complete_with_warnings", "error_code": 1})


def test_replication_service_request_state_change(world):
    replica = world.replica
    service = replica.service()
    assert (service["EnabledState"], service["RequestedState"], service["Started"]) == ("2", "12", "true")
    code, job, _ = replica.call(service, "RequestStateChange", RequestedState=3)
    assert (code, job) == (0, None)
    service = replica.service()
    assert (service["EnabledState"], service["RequestedState"], service["Started"]) == ("3", "3", "false")
    # While it is stopped, replication methods answer 32777 (System is not available).
    code, _, _ = replica.call(service, "InitiateFailover", ComputerSystem=vm_ref(WEB01))
    assert code == 32777
    assert replica.call(service, "RequestStateChange", RequestedState=9)[0] == 1  # Quiesce: not supported
    assert replica.call(service, "RequestStateChange", RequestedState=2)[0] == 0
    service = replica.service()
    assert (service["EnabledState"], service["RequestedState"], service["Started"]) == ("2", "2", "true")
    assert replica.call(service, "InitiateFailover", ComputerSystem=vm_ref(WEB01))[0] == 4096


def test_remove_authorization_entry_stops_the_replication_it_admitted(world):
    replica, primary = world.replica, world.primary
    entries = replica.query("SELECT * FROM Msvm_ReplicationAuthorizationSettingData")
    assert [e["AllowedPrimaryHostSystem"] for e in entries] == ["*"]
    assert replica.vm("web-01")["ReplicationState"] == "3"
    code, _, _ = replica.call(replica.service(), "RemoveAuthorizationEntry", AllowedPrimaryHostSystem="*")
    assert code == 0
    assert replica.query("SELECT * FROM Msvm_ReplicationAuthorizationSettingData") == []
    # Every VM the entry admitted: replication stopped, Critical on both hosts.
    for host in (replica, primary):
        vm = host.vm("web-01")
        assert (vm["ReplicationState"], vm["ReplicationHealth"]) == ("8", "3"), host.name


def test_start_replication_waits_for_its_start_time(world):
    primary, replica = world.primary, world.replica
    code, job, _ = primary.call(primary.service(), "CreateReplicationRelationship",
                                ComputerSystem=vm_ref(BUILD01),
                                ReplicationSettingData=instance("Msvm_ReplicationSettingData",
                                                                RecoveryConnectionPoint="HV-REPLICA"))
    assert code == 4096
    world.advance(LONG)
    now = world.control("GET", "clock")["now"]
    start = now + 600_000  # ten minutes from the world's now
    import datetime
    when = datetime.datetime.fromtimestamp(start / 1000, tz=datetime.timezone.utc)
    # As a DMTF CIM datetime string, the form WMI scripts pass.
    code, job, _ = primary.call(primary.service(), "StartReplication", ComputerSystem=vm_ref(BUILD01),
                                InitialReplicationType=1,
                                StartTime=when.strftime("%Y%m%d%H%M%S.000000+000"))
    assert code == 4096
    row = primary.job(job)
    assert row["ScheduledStartTime"].startswith(when.strftime("%Y-%m-%dT%H:%M:%S"))
    world.advance(LONG)  # a minute later: still waiting
    assert (primary.job(job)["JobState"], primary.job(job)["PercentComplete"]) == ("2", "0")
    assert replica.vm("build-01")["ReplicationState"] == "2"
    world.advance(600_000)  # past the start time: it runs and completes
    row = primary.job(job)
    assert row["JobState"] == "7"
    assert primary.vm("build-01")["ReplicationState"] == "3"
    assert replica.vm("build-01")["ReplicationState"] == "3"


def test_resynchronize_on_a_replica_resynchronizes_its_extended_replication(start_sim):
    from pathlib import Path
    topology = Path(__file__).resolve().parents[2] / "fixtures/topologies/extended.toml"
    world = World(start_sim("--clock", "manual", "--topology", str(topology)))
    replica = world.replica
    app = replica.vm("app-01")["Name"]
    service = replica.service()
    assert replica.call(service, "Resynchronize", ComputerSystem=vm_ref(app))[0] == 32775  # nothing extended
    steps = [
        ("CreateReplicationRelationship", {"ReplicationSettingData": instance(
            "Msvm_ReplicationSettingData", RecoveryConnectionPoint="HV-EXTENDED")}),
        ("StartReplication", {"InitialReplicationType": 1}),
    ]
    for method, params in steps:
        code, _, _ = replica.call(service, method, ComputerSystem=vm_ref(app), **params)
        assert code == 4096, method
        world.advance(LONG)
    extended = instance("Msvm_ReplicationRelationship", InstanceID=f"Microsoft:{app}\\HVR\\1")
    code, _, _ = replica.call(replica.vm("app-01"), "RequestReplicationStateChangeEx",
                              ReplicationRelationship=extended, RequestedState=7)
    assert code == 4096
    world.advance(LONG)

    def extended_state():
        rows = replica.query("SELECT * FROM Msvm_ReplicationRelationship")
        return {r["InstanceID"].rsplit("\\", 1)[1]: r["ReplicationState"] for r in rows
                if app in r["InstanceID"]}

    assert extended_state() == {"0": "3", "1": "7"}
    code, job, _ = replica.call(service, "Resynchronize", ComputerSystem=vm_ref(app))
    assert code == 4096
    assert extended_state() == {"0": "3", "1": "10"}  # Resynchronizing, the replica's own untouched
    world.advance(LONG)
    assert replica.job(job)["JobState"] == "7"
    assert extended_state() == {"0": "3", "1": "3"}


def test_template_settings_as_microsofts_replica_sample_uses_them(world):
    """ReplicaUtilities.GetReplicationSettings in Microsoft's Hyper-V Replica sample: the first
    Msvm_ReplicationSettingData related to a VM that is not replicated, filled in and passed
    whole to CreateReplicationRelationship."""
    primary = world.primary
    vm = f"Msvm_ComputerSystem.CreationClassName='Msvm_ComputerSystem',Name='{BUILD01}'"
    related = primary.query(f"ASSOCIATORS OF {{{vm}}} WHERE ResultClass = Msvm_ReplicationSettingData")
    assert len(related) == 1
    template = related[0]
    assert template["InstanceID"] == f"Microsoft:{BUILD01}\\HVR\\0"
    assert (template["PrimaryConnectionPoint"], template["ReplicationInterval"]) == ("HV-PRIMARY", "300")
    # Get by its key finds it too.
    assert primary.get("Msvm_ReplicationSettingData", InstanceID=template["InstanceID"])["InstanceID"] == \
        template["InstanceID"]
    filled = {k: v for k, v in template.items() if v is not None and k != "IncludedDisks"}
    filled.update(RecoveryConnectionPoint="HV-REPLICA", AuthenticationType=1, RecoveryServerPortNumber=80,
                  RecoveryHistory=24, ReplicationInterval=300, ApplicationConsistentSnapshotInterval=1)
    code, job, _ = primary.call(primary.service(), "CreateReplicationRelationship",
                                ComputerSystem=vm_ref(BUILD01),
                                ReplicationSettingData=instance("Msvm_ReplicationSettingData", **filled))
    assert code == 4096
    world.advance(LONG)
    assert primary.job(job)["JobState"] == "7"
    now = primary.query(f"ASSOCIATORS OF {{{vm}}} WHERE ResultClass = Msvm_ReplicationSettingData")
    # Replicated now: its real settings, no template (a primary is not extended).
    assert [(r["InstanceID"], r["RecoveryConnectionPoint"], r["RecoveryHistory"]) for r in now] == \
        [(f"Microsoft:{BUILD01}\\HVR\\0", "HV-REPLICA", "24")]
    # On the recovery host the new replica offers the template for extending it.
    replica = world.replica
    ext = [r for r in replica.query(f"ASSOCIATORS OF {{{vm}}} WHERE ResultClass = Msvm_ReplicationSettingData")
           if r["InstanceID"].endswith("\\1")]
    assert [(r["PrimaryConnectionPoint"], r["RecoveryConnectionPoint"]) for r in ext] == [("HV-REPLICA", None)]
