"""The same small WMI-over-WS-Management vocabulary on top of each real client, so that one walk
can be driven by pypsrp and by pywinrm: WQL queries (Enumerate + Pull through .../v2/*), method
calls with EPR and embedded-instance parameters, Get, and libvirt-style job polling.

Nothing here talks to the simulator in any other way than a WinRM client would.
"""

import time
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

import xmltodict
from pypsrp.wsman import SelectorSet, WSMan
from winrm.protocol import Protocol

V2 = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/"
WQL = "http://schemas.microsoft.com/wbem/wsman/1/WQL"
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "n": "http://schemas.xmlsoap.org/ws/2004/09/enumeration",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
}
A, W, N = ("{%s}" % NS[k] for k in ("a", "w", "n"))
KEYS = {
    "Msvm_ComputerSystem": ["CreationClassName", "Name"],
    "Msvm_ReplicationService": ["CreationClassName", "Name", "SystemCreationClassName", "SystemName"],
    "Msvm_ConcreteJob": ["InstanceID"],
}
RUNNING = {2, 3, 4, 5, 6}  # New, Starting, Running, Suspended, Shutting Down


class Ref:
    """A reference parameter (EPR) to an instance of `cls` with these key values."""

    def __init__(self, cls, **keys):
        self.cls, self.keys = cls, keys


def vm_ref(guid):
    return Ref("Msvm_ComputerSystem", CreationClassName="Msvm_ComputerSystem", Name=guid)


def rsd(**props):
    """An embedded Msvm_ReplicationSettingData (CIM-XML INSTANCE), as libvirt writes one."""
    body = "".join(f'<PROPERTY NAME="{k}" TYPE="string"><VALUE>{v}</VALUE></PROPERTY>' for k, v in props.items())
    return f'<INSTANCE CLASSNAME="Msvm_ReplicationSettingData">{body}</INSTANCE>'


def row(element):
    """An instance element as {property: text}; NULLs are None, cim:Datetime and the like unwrapped."""
    out = {}
    for prop in element:
        name = prop.tag.split("}")[1]
        if prop.get(f"{{{NS['xsi']}}}nil") == "true":
            value = None
        elif len(prop):
            value = prop[0].text
        else:
            value = prop.text
        out.setdefault(name, value)
    return out


def job_id_of(output, uri):
    return output.findtext(f"{{{uri}}}Job/{A}ReferenceParameters/{W}SelectorSet/{W}Selector[@Name='InstanceID']")


class Host:
    """One Hyper-V host through one client. Subclasses implement `_send`."""

    name = None

    def query(self, wql):
        enum = self._envelope_body("Enumerate", [("Filter", wql)])
        body = self._send(N[1:-1] + "/Enumerate", V2 + "*", enum)
        context = body.findtext(f".//{N}EnumerationContext")
        rows = []
        for _ in range(1000):
            if not context:
                break
            pull = self._envelope_body("Pull", [("EnumerationContext", context)])
            body = self._send(N[1:-1] + "/Pull", V2 + "*", pull)
            rows += [row(item) for item in body.find(f".//{N}Items")]
            context = body.findtext(f".//{N}PullResponse/{N}EnumerationContext")
        return rows

    def one(self, wql):
        rows = self.query(wql)
        assert len(rows) == 1, f"{wql}: {rows}"
        return rows[0]

    def vm(self, name):
        return self.one(f"SELECT * FROM Msvm_ComputerSystem WHERE ElementName = '{name}'")

    def service(self):
        return self.one("SELECT * FROM Msvm_ReplicationService")

    def call(self, target, method, **params):
        """Invokes `method` on the instance `target` (a row); returns (ReturnValue, job id, output element)."""
        cls = target["CreationClassName"] if "CreationClassName" in target else "Msvm_ConcreteJob"
        uri = V2 + cls
        keys = {k: target[k] for k in KEYS[cls]}
        output = self._invoke(uri, method, keys, params)
        return int(output.findtext(f"{{{uri}}}ReturnValue")), job_id_of(output, uri), output

    def job(self, job_id):
        return self.one(f"SELECT * FROM Msvm_ConcreteJob WHERE InstanceID = '{job_id}'")

    def wait(self, job_id, every=0.1, timeout=30):
        """Polls the job as libvirt does (WQL by InstanceID, every 100 ms); returns [(JobState, %)] and the last row."""
        seen, deadline = [], time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            seen.append((int(job["JobState"]), int(job["PercentComplete"])))
            if seen[-1][0] not in RUNNING:
                return seen, job
            assert time.monotonic() < deadline, f"job {job_id} still running: {seen}"
            time.sleep(every)

    def run(self, target, method, **params):
        """Calls and waits; the job must complete. Returns what polling saw."""
        code, job, _ = self.call(target, method, **params)
        assert code == 4096, f"{method} on {self.name}: ReturnValue {code}"
        seen, last = self.wait(job)
        assert last["JobState"] == "7", f"{method}: {last}"
        assert last["ErrorCode"] == "0"
        return seen


class PypsrpHost(Host):
    """pypsrp's WSMan at its defaults: Negotiate (NTLM inside SPNEGO) with message encryption over
    plain HTTP, no encryption over HTTPS for an https:// URL (`cert_validation`: False, or the path
    of a CA bundle to validate against). `auth="basic"`: Basic, unencrypted."""

    def __init__(self, url, user="admin", password="admin", cert_validation=True, auth=None):
        u = urlsplit(url)
        extra = {"auth": "basic", "encryption": "never"} if auth == "basic" else {}
        self.wsman = WSMan(u.hostname, port=u.port, path=u.path.strip("/"), ssl=u.scheme == "https",
                           cert_validation=cert_validation, username=user, password=password, **extra)
        self.name = self.service()["SystemName"]

    def _envelope_body(self, op, children):
        el = ET.Element(f"{N}{op}")
        for name, value in children:
            if name == "Filter":
                ET.SubElement(el, f"{W}Filter", Dialect=WQL).text = value
            else:
                ET.SubElement(el, f"{N}{name}").text = value
        return el

    def _send(self, action, resource_uri, body, selectors=None):
        return self.wsman.invoke(action, resource_uri, body, selector_set=selectors).find("s:Body", NS)

    def _invoke(self, uri, method, keys, params):
        selectors = SelectorSet()
        for k, v in keys.items():
            selectors.add_option(k, v)
        body = ET.Element(f"{{{uri}}}{method}_INPUT")
        for name, value in params.items():
            param = ET.SubElement(body, f"{{{uri}}}{name}")
            if isinstance(value, Ref):
                ET.SubElement(param, A + "Address").text = ANONYMOUS
                refp = ET.SubElement(param, A + "ReferenceParameters")
                ET.SubElement(refp, W + "ResourceURI").text = V2 + value.cls
                ss = ET.SubElement(refp, W + "SelectorSet")
                for k, v in value.keys.items():
                    ET.SubElement(ss, W + "Selector", Name=k).text = v
            elif value is None:
                param.set(f"{{{NS['xsi']}}}nil", "true")
            else:
                param.text = str(value)
        return self._send(f"{uri}/{method}", uri, body, selectors).find(f"{{{uri}}}{method}_OUTPUT")

    def get(self, cls, **keys):
        selectors = SelectorSet()
        for k, v in keys.items():
            selectors.add_option(k, v)
        body = self.wsman.get(V2 + cls, selector_set=selectors)
        return row(body.find(f"{{{V2 + cls}}}{cls}"))


class PywinrmHost(Host):
    """pywinrm's Protocol, transport="ntlm" by default (raw NTLM under Negotiate, with message
    encryption over plain HTTP); envelopes from build_wsman_header + xmltodict."""

    def __init__(self, url, user="admin", password="admin", server_cert_validation="validate",
                 transport="ntlm"):
        self.protocol = Protocol(url, transport=transport, username=user, password=password,
                                 server_cert_validation=server_cert_validation)
        self.name = self.service()["SystemName"]

    def envelope(self, action, resource_uri, body, selectors=None):
        env = self.protocol.build_wsman_header(action, resource_uri)
        env["env:Header"]["a:To"] = self.protocol.transport.endpoint
        if selectors:
            env["env:Header"]["w:SelectorSet"] = {
                "w:Selector": [{"@Name": k, "#text": v} for k, v in selectors.items()]}
        env["env:Body"] = body
        return xmltodict.unparse({"env:Envelope": env})

    def _envelope_body(self, op, children):
        inner = {}
        for name, value in children:
            if name == "Filter":
                inner["w:Filter"] = {"@Dialect": WQL, "#text": value}
            else:
                inner[f"n:{name}"] = value
        return {f"n:{op}": inner}

    def _send(self, action, resource_uri, body, selectors=None):
        xml = self.envelope(action, resource_uri, body, selectors)
        return ET.fromstring(self.protocol.send_message(xml)).find("s:Body", NS)

    def _invoke(self, uri, method, keys, params):
        inner = {"@xmlns:p": uri}
        for name, value in params.items():
            if isinstance(value, Ref):
                inner[f"p:{name}"] = {"a:Address": ANONYMOUS, "a:ReferenceParameters": {
                    "w:ResourceURI": V2 + value.cls,
                    "w:SelectorSet": {"w:Selector": [{"@Name": k, "#text": v} for k, v in value.keys.items()]}}}
            elif value is None:
                inner[f"p:{name}"] = {"@xsi:nil": "true"}
            else:
                inner[f"p:{name}"] = str(value)
        return self._send(f"{uri}/{method}", uri, {f"p:{method}_INPUT": inner}, keys).find(f"{{{uri}}}{method}_OUTPUT")

    def get(self, cls, **keys):
        body = self._send("http://schemas.xmlsoap.org/ws/2004/09/transfer/Get", V2 + cls, None, keys)
        return row(body.find(f"{{{V2 + cls}}}{cls}"))


def views(primary, replica, name):
    """(mode, state) of a VM on each host, from a WQL lookup by ElementName."""
    out = []
    for host in (primary, replica):
        vm = host.vm(name)
        out.append((int(vm["ReplicationMode"]), int(vm["ReplicationState"])))
    return tuple(out)


def assert_visible_progress(seen):
    """A client polling every 100 ms saw the job run: Running at least once, PercentComplete rising, then 7 at 100 %."""
    states = [s for s, _ in seen]
    percents = [p for _, p in seen]
    assert 4 in states, f"never seen Running: {seen}"
    assert set(states) <= {2, 3, 4, 7}, seen
    assert percents == sorted(percents), f"PercentComplete went down: {seen}"
    assert len({p for p in percents if 0 < p < 100}) >= 2, f"no rising progress: {seen}"
    assert seen[-1] == (7, 100), seen


def planned_failover_reverse_failback(primary, replica, vm_name="app-01"):
    """The whole host-to-host walk, checking both hosts' views after each step."""
    MODE_PRIMARY, MODE_REPLICA = 1, 2
    REPLICATING, SYNCED, RECOVERED, COMMITTED = 3, 4, 5, 6
    vm = primary.vm(vm_name)
    ref = vm_ref(vm["Name"])
    assert views(primary, replica, vm_name) == ((MODE_PRIMARY, REPLICATING), (MODE_REPLICA, REPLICATING))

    # Planned failover: prepared on the primary, executed on the replica.
    primary.run(vm, "RequestReplicationStateChange", RequestedState=4)
    assert views(primary, replica, vm_name) == ((MODE_PRIMARY, SYNCED), (MODE_REPLICA, REPLICATING))
    replica.run(replica.service(), "InitiateFailover", ComputerSystem=ref, SnapshotSettingData=None)
    assert views(primary, replica, vm_name)[1] == (MODE_REPLICA, RECOVERED)
    assert replica.vm(vm_name)["FailedOverReplicationType"] == "3"  # Planned
    replica.run(replica.service(), "CommitFailover", ComputerSystem=ref)
    assert views(primary, replica, vm_name)[1] == (MODE_REPLICA, COMMITTED)

    # Reverse replication: the old replica becomes the primary.
    replica.run(replica.service(), "ReverseReplicationRelationship", ComputerSystem=ref,
                ReplicationSettingData=rsd(RecoveryConnectionPoint=primary.name))
    assert views(primary, replica, vm_name) == ((MODE_REPLICA, REPLICATING), (MODE_PRIMARY, REPLICATING))
    relationship = replica.one(f"SELECT * FROM Msvm_ReplicationRelationship WHERE InstanceID = "
                               f"'Microsoft:{vm['Name']}\\\\HVR\\\\0'")
    assert relationship["ReplicationState"] == "3"

    # Failback host to host: the same walk the other way closes the circle.
    replica.run(replica.vm(vm_name), "RequestReplicationStateChange", RequestedState=4)
    primary.run(primary.service(), "InitiateFailover", ComputerSystem=ref)
    assert views(primary, replica, vm_name)[0] == (MODE_REPLICA, RECOVERED)
    primary.run(primary.service(), "CommitFailover", ComputerSystem=ref)
    primary.run(primary.service(), "ReverseReplicationRelationship", ComputerSystem=ref)
    assert views(primary, replica, vm_name) == ((MODE_PRIMARY, REPLICATING), (MODE_REPLICA, REPLICATING))


def initiate_failback(replica, vm_name="web-01"):
    """The provider path: unplanned failover, commit, InitiateFailback; 13 while the job runs, then 14."""
    vm = replica.vm(vm_name)
    ref = vm_ref(vm["Name"])
    service = replica.service()
    points = replica.query(f"SELECT * FROM Msvm_VirtualSystemSettingData WHERE VirtualSystemIdentifier = "
                           f"'{vm['Name']}' AND VirtualSystemType <> 'Microsoft:Hyper-V:System:Realized'")
    assert points, "the replica has recovery points"
    replica.run(service, "InitiateFailover", ComputerSystem=ref,
                SnapshotSettingData=Ref("Msvm_VirtualSystemSettingData", InstanceID=points[-1]["InstanceID"]))
    assert replica.vm(vm_name)["ReplicationState"] == "5"
    replica.run(service, "CommitFailover", ComputerSystem=ref)
    assert replica.vm(vm_name)["ReplicationState"] == "6"

    started = time.monotonic()
    code, job, _ = replica.call(service, "InitiateFailback", ComputerSystem=ref,
                                ReplicationSettingData=rsd(RecoveryConnectionPoint="HV-PRIMARY"))
    assert code == 4096
    assert replica.vm(vm_name)["ReplicationState"] == "13"  # Failback in progress (WaitingForFailback)
    seen, last = replica.wait(job)
    took = time.monotonic() - started
    assert_visible_progress(seen)
    assert took < 2.5, f"the failback job took {took:.1f}s"
    assert last["JobType"] == "124"
    vm = replica.vm(vm_name)
    assert (vm["ReplicationMode"], vm["ReplicationState"]) == ("2", "14")  # Failback complete
    return job
