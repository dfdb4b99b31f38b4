"""Testing a DR tool with pytest: the `replica_sim` fixture gives every test a fresh world of one
simulator per session, and pypsrp talks to its two hosts as to two Hyper-V hosts.

    pip install ./python pypsrp pytest     # in a clone of replica-sim
    pytest test_pytest_failback.py
"""

import xml.etree.ElementTree as ET

import pytest
from pypsrp.wsman import SelectorSet, WSMan

V2 = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/"
WQL = "http://schemas.microsoft.com/wbem/wsman/1/WQL"
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
A = "{http://schemas.xmlsoap.org/ws/2004/08/addressing}"
W = "{http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd}"
N = "{http://schemas.xmlsoap.org/ws/2004/09/enumeration}"


def connect(world, host):
    """A pypsrp client for one host of the test's world (the URL's path selects the world)."""
    endpoint = world.endpoint(host)
    user, password = world.credentials
    # pypsrp's defaults otherwise: Negotiate (NTLM) with message encryption, as on Windows.
    return WSMan(endpoint.host, port=endpoint.port, path=endpoint.path, ssl=endpoint.ssl,
                 username=user, password=password)


def query(wsman, wql):
    """A WQL query (Enumerate, then Pull until the context is gone); one dict per row."""
    enumerate_ = ET.Element(N + "Enumerate")
    ET.SubElement(enumerate_, W + "Filter", Dialect=WQL).text = wql
    context = wsman.enumerate(V2 + "*", enumerate_).findtext(f"{N}EnumerateResponse/{N}EnumerationContext")
    rows = []
    while context:
        pull = ET.Element(N + "Pull")
        ET.SubElement(pull, N + "EnumerationContext").text = context
        response = wsman.pull(V2 + "*", pull).find(N + "PullResponse")
        rows += [{prop.tag.split("}")[1]: prop.text for prop in row} for row in response.find(N + "Items")]
        context = response.findtext(N + "EnumerationContext")
    return rows


def initiate_failover(wsman, vm_name):
    """Msvm_ReplicationService.InitiateFailover on the VM; returns (ReturnValue, job id)."""
    service = query(wsman, "SELECT * FROM Msvm_ReplicationService")[0]
    vm = query(wsman, f"SELECT * FROM Msvm_ComputerSystem WHERE ElementName = '{vm_name}'")[0]
    uri = V2 + "Msvm_ReplicationService"
    selectors = SelectorSet()
    for key in ("CreationClassName", "Name", "SystemCreationClassName", "SystemName"):
        selectors.add_option(key, service[key])
    body = ET.Element(f"{{{uri}}}InitiateFailover_INPUT")
    param = ET.SubElement(body, f"{{{uri}}}ComputerSystem")
    ET.SubElement(param, A + "Address").text = ANONYMOUS
    ref = ET.SubElement(param, A + "ReferenceParameters")
    ET.SubElement(ref, W + "ResourceURI").text = V2 + "Msvm_ComputerSystem"
    keys = ET.SubElement(ref, W + "SelectorSet")
    for key in ("CreationClassName", "Name"):
        ET.SubElement(keys, W + "Selector", Name=key).text = vm[key]
    output = wsman.invoke(f"{uri}/InitiateFailover", uri, body, selector_set=selectors).find(
        f".//{{{uri}}}InitiateFailover_OUTPUT")
    job = output.findtext(f"{{{uri}}}Job/{A}ReferenceParameters/{W}SelectorSet/{W}Selector[@Name='InstanceID']")
    return int(output.findtext(f"{{{uri}}}ReturnValue")), job


@pytest.mark.replica_sim(clock="manual")  # time moves only when the test says so
def test_failover_job_completes(replica_sim):
    replica = connect(replica_sim, "HV-REPLICA")
    code, job_id = initiate_failover(replica, "app-01")
    assert code == 4096  # job started
    replica_sim.control.advance("1s")
    job = query(replica, f"SELECT * FROM Msvm_ConcreteJob WHERE InstanceID = '{job_id}'")[0]
    assert job["JobState"] == "7"  # Completed
    calls = [e["method"] for e in replica_sim.control.journal_entries() if e["operation"] == "Invoke"]
    assert calls == ["InitiateFailover"]


def test_a_refused_failover(replica_sim):
    # A fresh world: the previous test's failover is not here. Break the next call on purpose.
    replica_sim.control.add_fault("return_code", code=32768, method="InitiateFailover", count=1)
    code, job_id = initiate_failover(connect(replica_sim, "HV-REPLICA"), "app-01")
    assert (code, job_id) == (32768, None)  # Failed, no job
