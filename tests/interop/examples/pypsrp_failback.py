"""Planned failover, reverse replication and host-to-host failback, driven with pypsrp.

    python pypsrp_failback.py REPLICA PRIMARY [USER:PASS]

REPLICA and PRIMARY are the WS-Management endpoints of the two Hyper-V hosts, as URLs
(http://127.0.0.1:5987/wsman) or HOST:PORT. Only WS-Management is used: WQL lookups through
the .../v2/* resource URI, method calls on Msvm_ReplicationService and Msvm_ComputerSystem,
and job polling as libvirt does it (the job re-read by WQL every 100 ms).
"""

import sys
import time
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

from pypsrp.wsman import SelectorSet, WSMan

V2 = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/"
WQL = "http://schemas.microsoft.com/wbem/wsman/1/WQL"
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
A = "{http://schemas.xmlsoap.org/ws/2004/08/addressing}"
W = "{http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd}"
N = "{http://schemas.xmlsoap.org/ws/2004/09/enumeration}"
KEYS = {"Msvm_ComputerSystem": ["CreationClassName", "Name"],
        "Msvm_ReplicationService": ["CreationClassName", "Name", "SystemCreationClassName", "SystemName"]}


def connect(endpoint, user, password):
    # pypsrp's defaults, as against a Windows host: Negotiate (NTLM) with message encryption.
    url = urlsplit(endpoint if "//" in endpoint else "http://" + endpoint)
    return WSMan(url.hostname, port=url.port, ssl=False, username=user, password=password)


def query(wsman, wql):
    """Runs a WQL query (Enumerate, then Pull until the context is gone); one dict per row."""
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


def call(wsman, target, method, **params):
    """Invokes `method` on the instance `target` (a row of `query`); waits for its job."""
    cls = target["CreationClassName"]
    uri = V2 + cls
    selectors = SelectorSet()
    for key in KEYS[cls]:
        selectors.add_option(key, target[key])
    body = ET.Element(f"{{{uri}}}{method}_INPUT")
    for name, value in params.items():
        param = ET.SubElement(body, f"{{{uri}}}{name}")
        if isinstance(value, dict):  # a reference (EPR) to a VM
            ET.SubElement(param, A + "Address").text = ANONYMOUS
            ref = ET.SubElement(param, A + "ReferenceParameters")
            ET.SubElement(ref, W + "ResourceURI").text = V2 + "Msvm_ComputerSystem"
            keys = ET.SubElement(ref, W + "SelectorSet")
            for key in KEYS["Msvm_ComputerSystem"]:
                ET.SubElement(keys, W + "Selector", Name=key).text = value[key]
        else:
            param.text = str(value)
    output = wsman.invoke(f"{uri}/{method}", uri, body, selector_set=selectors).find(f".//{{{uri}}}{method}_OUTPUT")
    code = int(output.findtext(f"{{{uri}}}ReturnValue"))
    job = output.findtext(f"{{{uri}}}Job/{A}ReferenceParameters/{W}SelectorSet/{W}Selector[@Name='InstanceID']")
    if code == 4096:
        wait_for_job(wsman, job)
    elif code != 0:
        sys.exit(f"{method} failed with ReturnValue {code}")


def wait_for_job(wsman, job_id):
    """Polls the job every 100 ms until it ends; prints the JobStates it went through."""
    states, polls = [], 0
    while True:
        job = query(wsman, f"SELECT * FROM Msvm_ConcreteJob WHERE InstanceID = '{job_id}'")[0]
        polls += 1
        if not states or states[-1] != job["JobState"]:
            states.append(job["JobState"])
        if int(job["JobState"]) not in (2, 3, 4, 5, 6):  # New, Starting, Running, Suspended, Shutting Down
            break
        time.sleep(0.1)
    print(f"    {job['Caption']}: JobState {' -> '.join(states)}, {job['PercentComplete']}% after {polls} polls")
    if job["JobState"] != "7":
        sys.exit(f"job {job_id} ended in {job['JobState']}: {job['ErrorCode']} {job['ErrorDescription']}")


def show(hosts, vm_name):
    for name, wsman in hosts.items():
        vm = query(wsman, f"SELECT * FROM Msvm_ComputerSystem WHERE ElementName = '{vm_name}'")[0]
        print(f"    {name}: ReplicationMode {vm['ReplicationMode']}, ReplicationState {vm['ReplicationState']}, "
              f"EnabledState {vm['EnabledState']}")


def main():
    user, _, password = (sys.argv[3] if len(sys.argv) > 3 else "admin:admin").partition(":")
    replica, primary = connect(sys.argv[1], user, password), connect(sys.argv[2], user, password)
    hosts = {"primary": primary, "replica": replica}
    vm = query(primary, "SELECT * FROM Msvm_ComputerSystem WHERE ElementName = 'app-01'")[0]
    service = {name: query(wsman, "SELECT * FROM Msvm_ReplicationService")[0] for name, wsman in hosts.items()}
    print(f"app-01 ({vm['Name']}) before:")
    show(hosts, "app-01")

    print("1. planned failover: prepare on the primary (RequestReplicationStateChange 4)")
    call(primary, vm, "RequestReplicationStateChange", RequestedState=4)
    print("2. InitiateFailover on the replica, then CommitFailover")
    call(replica, service["replica"], "InitiateFailover", ComputerSystem=vm)
    call(replica, service["replica"], "CommitFailover", ComputerSystem=vm)
    print("3. ReverseReplicationRelationship: the replica becomes the primary")
    call(replica, service["replica"], "ReverseReplicationRelationship", ComputerSystem=vm)
    show(hosts, "app-01")

    print("4. failback: the same walk the other way round")
    call(replica, vm, "RequestReplicationStateChange", RequestedState=4)
    call(primary, service["primary"], "InitiateFailover", ComputerSystem=vm)
    call(primary, service["primary"], "CommitFailover", ComputerSystem=vm)
    call(primary, service["primary"], "ReverseReplicationRelationship", ComputerSystem=vm)
    print("app-01 after:")
    show(hosts, "app-01")


if __name__ == "__main__":
    main()
