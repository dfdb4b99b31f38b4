"""Every fault kind of the control API, as pypsrp (a real WinRM client) sees it, and the
worked example of the control plane: arrange a fault (InitiateFailback's job fails with
32768 after 40 %), drive the client, assert on the journal and the coverage.

Each test starts its simulator with conftest.py's ``start_sim`` and drives a world of its own
in it (``/worlds/NAME/wsman`` and ``/worlds/NAME/_replica/v1``), as a suite sharing one
simulator between parallel tests would.
"""

import json
import time
import urllib.error
import urllib.request
import uuid
import xml.etree.ElementTree as ET

import pytest
import requests
from pypsrp.exceptions import WSManFaultError
from pypsrp.wsman import SelectorSet, WSMan

V2 = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/"
WQL = "http://schemas.microsoft.com/wbem/wsman/1/WQL"
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
A = "{http://schemas.xmlsoap.org/ws/2004/08/addressing}"
W = "{http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd}"
N = "{http://schemas.xmlsoap.org/ws/2004/09/enumeration}"

PRIMARY, REPLICA = "HV-PRIMARY", "HV-REPLICA"
APP01 = "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B01"  # off, Replicating (fixtures/topologies/default.toml)


class World:
    """One isolated world: its control API and a pypsrp client per host."""

    def __init__(self, hosts):
        self.name = "py-" + uuid.uuid4().hex[:12]
        self.hosts = hosts

    def control(self, method, endpoint, body=None, host=REPLICA, expect=None):
        addr, port = self.hosts[host]
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"http://{addr}:{port}/worlds/{self.name}/_replica/v1/{endpoint}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, text = resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        if expect is not None:
            assert status == expect, f"{method} {endpoint}: {status} {text}"
        return json.loads(text) if text else None

    def advance(self, ms):
        self.control("POST", "clock", {"advance_ms": ms}, expect=200)

    def wsman(self, host, **kwargs):
        addr, port = self.hosts[host]
        return WSMan(addr, port=port, path=f"worlds/{self.name}/wsman", ssl=False, auth="basic",
                     encryption="never", username="admin", password="admin", **kwargs)

    def journal(self):
        return self.control("GET", "journal", expect=200)["entries"]

    def coverage_count(self, table, row_id):
        cov = self.control("GET", "coverage", expect=200)
        return next(r["count"] for r in cov[table] if r["id"] == row_id)


@pytest.fixture
def world(start_sim):
    """A world of its own in a simulator on a manual clock (conftest.py's `start_sim`)."""
    sim = start_sim("--clock", "manual")
    hosts = {}
    for name, url in sim.urls.items():
        addr, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
        hosts[name] = (addr, int(port))
    return World(hosts)


def query(wsman, wql):
    enumerate_ = ET.Element(N + "Enumerate")
    ET.SubElement(enumerate_, W + "Filter", Dialect=WQL).text = wql
    context = wsman.enumerate(V2 + "*", enumerate_).findtext(f"{N}EnumerateResponse/{N}EnumerationContext")
    rows = []
    while context:
        pull = ET.Element(N + "Pull")
        ET.SubElement(pull, N + "EnumerationContext").text = context
        response = wsman.pull(V2 + "*", pull).find(N + "PullResponse")
        rows += [{p.tag.split("}")[1]: p.text for p in row} for row in response.find(N + "Items")]
        context = response.findtext(N + "EnumerationContext")
    return rows


def service_call(wsman, host, method, vm=APP01):
    """Msvm_ReplicationService.<method>(ComputerSystem = vm); returns (ReturnValue, job id)."""
    uri = V2 + "Msvm_ReplicationService"
    selectors = SelectorSet()
    for key, value in (("CreationClassName", "Msvm_ReplicationService"), ("Name", "replicasvc"),
                       ("SystemCreationClassName", "Msvm_ComputerSystem"), ("SystemName", host)):
        selectors.add_option(key, value)
    body = ET.Element(f"{{{uri}}}{method}_INPUT")
    param = ET.SubElement(body, f"{{{uri}}}ComputerSystem")
    ET.SubElement(param, A + "Address").text = ANONYMOUS
    ref = ET.SubElement(param, A + "ReferenceParameters")
    ET.SubElement(ref, W + "ResourceURI").text = V2 + "Msvm_ComputerSystem"
    keys = ET.SubElement(ref, W + "SelectorSet")
    ET.SubElement(keys, W + "Selector", Name="CreationClassName").text = "Msvm_ComputerSystem"
    ET.SubElement(keys, W + "Selector", Name="Name").text = vm
    out = wsman.invoke(f"{uri}/{method}", uri, body, selector_set=selectors).find(f".//{{{uri}}}{method}_OUTPUT")
    job = out.findtext(f"{{{uri}}}Job/{A}ReferenceParameters/{W}SelectorSet/{W}Selector[@Name='InstanceID']")
    return int(out.findtext(f"{{{uri}}}ReturnValue")), job


def job(wsman, job_id):
    return query(wsman, f"SELECT * FROM Msvm_ConcreteJob WHERE InstanceID = '{job_id}'")[0]


def fail_over(world, replica):
    code, job_id = service_call(replica, REPLICA, "InitiateFailover")
    assert code == 4096
    world.advance(1000)
    assert job(replica, job_id)["JobState"] == "7"


# --- the worked example (issue item 6) -------------------------------------------------------

def test_example_failback_job_fails_with_32768_after_40_percent(world):
    replica = world.wsman(REPLICA)
    fail_over(world, replica)
    world.control("POST", "faults", {
        "kind": "fail_job", "host": REPLICA, "method": "InitiateFailback", "error_code": 32768,
        "description": "The provider could not reverse-sync the recovery point.",
        "after_percent": 40, "count": 1,
    }, expect=201)

    code, job_id = service_call(replica, REPLICA, "InitiateFailback")
    assert code == 4096
    world.advance(200)  # 25 %: still running, the VM waits for failback (13)
    running = job(replica, job_id)
    assert (running["JobState"], running["PercentComplete"]) == ("4", "25")
    vm = query(replica, f"SELECT * FROM Msvm_ComputerSystem WHERE Name = '{APP01}'")[0]
    assert vm["ReplicationState"] == "13"

    world.advance(200)  # past 40 %: Exception
    failed = job(replica, job_id)
    assert failed["JobState"] == "10"
    assert failed["ErrorCode"] == "32768"
    assert failed["ErrorDescription"] == "The provider could not reverse-sync the recovery point."

    calls = [e for e in world.journal() if e["method"] == "InitiateFailback"]
    assert len(calls) == 1
    assert calls[0]["code"] == 4096 and calls[0]["job"] == job_id
    assert calls[0]["faults"] == ["fail_job"]
    assert world.coverage_count("fault_kinds", "fail_job") == 1
    assert world.coverage_count("return_codes", "4096") == 2


# --- each fault kind --------------------------------------------------------------------------

def test_return_code(world):
    world.control("POST", "faults", {"kind": "return_code", "code": 32774, "method": "InitiateFailover",
                                     "count": 1}, expect=201)
    replica = world.wsman(REPLICA)
    assert service_call(replica, REPLICA, "InitiateFailover")[0] == 32774
    assert service_call(replica, REPLICA, "InitiateFailover")[0] == 4096  # the rule is spent
    assert world.journal()[0]["faults"] == ["return_code"]
    assert world.coverage_count("fault_kinds", "return_code") == 1


def test_fail_job(world):
    replica = world.wsman(REPLICA)
    world.control("POST", "faults", {"kind": "fail_job", "method": "InitiateFailover", "error_code": 32779,
                                     "description": "injected", "after_percent": 0}, expect=201)
    code, job_id = service_call(replica, REPLICA, "InitiateFailover")
    assert code == 4096
    world.advance(1)
    failed = job(replica, job_id)
    assert (failed["JobState"], failed["ErrorCode"], failed["ErrorDescription"]) == ("10", "32779", "injected")


def test_delay_is_measured(world):
    world.control("POST", "faults", {"kind": "delay", "ms": 600, "method": "Enumerate", "count": 1}, expect=201)
    replica = world.wsman(REPLICA)
    started = time.monotonic()
    query(replica, "SELECT * FROM Msvm_ReplicationService")
    delayed = time.monotonic() - started
    started = time.monotonic()
    query(replica, "SELECT * FROM Msvm_ReplicationService")
    normal = time.monotonic() - started
    assert delayed >= 0.6, delayed
    assert normal < 0.5, normal
    assert world.journal()[0]["faults"] == ["delay"]


def test_drop_connection_raises_a_connection_error(world):
    world.control("POST", "faults", {"kind": "drop_connection", "method": "Enumerate", "count": 1}, expect=201)
    replica = world.wsman(REPLICA)
    with pytest.raises(requests.exceptions.ConnectionError):
        query(replica, "SELECT * FROM Msvm_ReplicationService")
    # The next call gets through (a fresh client: pypsrp does not reuse a broken session).
    assert query(world.wsman(REPLICA), "SELECT * FROM Msvm_ReplicationService")
    assert world.journal()[0]["faults"] == ["drop_connection"]
    assert world.coverage_count("fault_kinds", "drop_connection") == 1


def test_host_down_answers_32777(world):
    down = world.control("POST", "faults", {"kind": "host_down", "host": REPLICA}, expect=201)
    replica = world.wsman(REPLICA)
    assert service_call(replica, REPLICA, "InitiateFailover")[0] == 32777
    with pytest.raises(WSManFaultError):
        query(replica, "SELECT * FROM Msvm_ReplicationService")
    world.control("DELETE", f"faults/{down['id']}", expect=200)
    assert service_call(replica, REPLICA, "InitiateFailover")[0] == 4096
    assert world.coverage_count("fault_kinds", "host_down") == 2


def test_partition_refuses_the_reverse_with_32777(world):
    replica = world.wsman(REPLICA)
    fail_over(world, replica)
    rule = world.control("POST", "faults", {"kind": "partition", "a": PRIMARY, "b": REPLICA}, expect=201)
    assert service_call(replica, REPLICA, "ReverseReplicationRelationship")[0] == 32777
    world.control("DELETE", f"faults/{rule['id']}", expect=200)
    assert service_call(replica, REPLICA, "ReverseReplicationRelationship")[0] == 4096
    codes = [e["code"] for e in world.journal() if e["method"] == "ReverseReplicationRelationship"]
    assert codes == [32777, 4096]
