"""Unplanned failover, then failback through InitiateFailback, driven with pywinrm.

    python pywinrm_failback.py REPLICA [USER:PASS]

REPLICA is the WS-Management endpoint of the replica host, as a URL
(http://127.0.0.1:5987/wsman) or HOST:PORT. pywinrm has no WMI helpers, so the envelopes are
built with its build_wsman_header and xmltodict (which pywinrm depends on) and sent with
Protocol.send_message; a fault raises winrm.exceptions.WSManFaultError.
"""

import sys
import time
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

import winrm
import xmltodict

V2 = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/"
WQL = "http://schemas.microsoft.com/wbem/wsman/1/WQL"
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
ENUMERATION = "http://schemas.xmlsoap.org/ws/2004/09/enumeration"
A = "{http://schemas.xmlsoap.org/ws/2004/08/addressing}"
W = "{http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd}"
N = "{%s}" % ENUMERATION


def send(protocol, action, resource_uri, body, selectors=None):
    envelope = protocol.build_wsman_header(action, resource_uri)
    envelope["env:Header"]["a:To"] = protocol.transport.endpoint
    if selectors:
        envelope["env:Header"]["w:SelectorSet"] = {
            "w:Selector": [{"@Name": k, "#text": v} for k, v in selectors.items()]}
    envelope["env:Body"] = body
    return ET.fromstring(protocol.send_message(xmltodict.unparse({"env:Envelope": envelope})))


def query(protocol, wql):
    """Runs a WQL query through .../v2/* (Enumerate, then Pull until the context is gone)."""
    body = {"n:Enumerate": {"w:Filter": {"@Dialect": WQL, "#text": wql}}}
    context = send(protocol, ENUMERATION + "/Enumerate", V2 + "*", body).findtext(f".//{N}EnumerationContext")
    rows = []
    while context:
        body = {"n:Pull": {"n:EnumerationContext": context}}
        response = send(protocol, ENUMERATION + "/Pull", V2 + "*", body).find(f".//{N}PullResponse")
        rows += [{prop.tag.split("}")[1]: prop.text for prop in row} for row in response.find(N + "Items")]
        context = response.findtext(N + "EnumerationContext")
    return rows


def call(protocol, service, method, vm, **params):
    """Invokes a Msvm_ReplicationService method on the VM; returns the job's InstanceID."""
    uri = V2 + "Msvm_ReplicationService"
    keys = ["CreationClassName", "Name", "SystemCreationClassName", "SystemName"]
    vm_ref = {"a:Address": ANONYMOUS, "a:ReferenceParameters": {
        "w:ResourceURI": V2 + "Msvm_ComputerSystem",
        "w:SelectorSet": {"w:Selector": [{"@Name": "CreationClassName", "#text": "Msvm_ComputerSystem"},
                                         {"@Name": "Name", "#text": vm["Name"]}]}}}
    body = {f"p:{method}_INPUT": {"@xmlns:p": uri, "p:ComputerSystem": vm_ref,
                                  **{f"p:{name}": value for name, value in params.items()}}}
    output = send(protocol, f"{uri}/{method}", uri, body, {k: service[k] for k in keys})
    code = output.findtext(f".//{{{uri}}}ReturnValue")
    if code != "4096":
        sys.exit(f"{method} answered ReturnValue {code}")
    return output.findtext(f".//{{{uri}}}Job/{A}ReferenceParameters/{W}SelectorSet/{W}Selector[@Name='InstanceID']")


def wait_for_job(protocol, job_id, vm_name=None):
    """Polls the job every 100 ms as libvirt does; prints each change of JobState (and of the VM's ReplicationState)."""
    last = None
    while True:
        job = query(protocol, f"SELECT * FROM Msvm_ConcreteJob WHERE InstanceID = '{job_id}'")[0]
        seen = f"JobState {job['JobState']}"
        if vm_name:
            vm = query(protocol, f"SELECT * FROM Msvm_ComputerSystem WHERE ElementName = '{vm_name}'")[0]
            seen += f", ReplicationState {vm['ReplicationState']}"
        if seen != last:
            print(f"    {job['Caption']}: {seen} ({job['PercentComplete']}%)")
            last = seen
        if job["JobState"] not in ("2", "3", "4", "5", "6"):
            break
        time.sleep(0.1)
    if job["JobState"] != "7":
        sys.exit(f"job ended in {job['JobState']}: {job['ErrorCode']} {job['ErrorDescription']}")


def main():
    url = urlsplit(sys.argv[1] if "//" in sys.argv[1] else "http://" + sys.argv[1])
    endpoint = f"http://{url.netloc}{url.path if url.path.strip('/') else '/wsman'}"
    user, _, password = (sys.argv[2] if len(sys.argv) > 2 else "admin:admin").partition(":")
    # NTLM with message encryption, as against a Windows host.
    replica = winrm.Session(endpoint, auth=(user, password), transport="ntlm").protocol
    service = query(replica, "SELECT * FROM Msvm_ReplicationService")[0]
    vm = query(replica, "SELECT * FROM Msvm_ComputerSystem WHERE ElementName = 'web-01'")[0]
    print(f"web-01 on {service['SystemName']}: ReplicationMode {vm['ReplicationMode']}, "
          f"ReplicationState {vm['ReplicationState']}")

    print("1. unplanned failover to the latest recovery point, then commit")
    wait_for_job(replica, call(replica, service, "InitiateFailover", vm))
    wait_for_job(replica, call(replica, service, "CommitFailover", vm))

    print("2. InitiateFailback: 13 (Failback in progress) while the job runs, then 14 (Failback complete)")
    settings = ('<INSTANCE CLASSNAME="Msvm_ReplicationSettingData">'
                '<PROPERTY NAME="RecoveryConnectionPoint" TYPE="string"><VALUE>HV-PRIMARY</VALUE></PROPERTY>'
                '</INSTANCE>')  # an embedded instance: CIM-XML as a string parameter
    wait_for_job(replica, call(replica, service, "InitiateFailback", vm, ReplicationSettingData=settings), "web-01")


if __name__ == "__main__":
    main()
