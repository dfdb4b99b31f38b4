"""The object model walked by pypsrp (an unmodified third-party WinRM client) as libvirt and the
Hyper-V PowerShell module walk it: instance enumerations that must carry every property libvirt's
openwsman structs require, the WS-Management association filter (AssociatedInstances and
AssociationInstances), WQL ASSOCIATORS OF and REFERENCES OF, and GetErrorEx after a failing
job. Issue 16.

The client is configured with Basic auth and no message encryption, as the other interop tests
were written; each test runs its own simulator (conftest.py's ``start_sim``) on a manual clock.
"""

import re
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from pypsrp.exceptions import WSManFaultError
from pypsrp.wsman import SelectorSet, WSMan

ROOT = Path(__file__).resolve().parents[2]
V2 = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/"
WQL = "http://schemas.microsoft.com/wbem/wsman/1/WQL"
ASSOCIATION = "http://schemas.dmtf.org/wbem/wsman/1/cimbinding/associationFilter"
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
A = "{http://schemas.xmlsoap.org/ws/2004/08/addressing}"
W = "{http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd}"
N = "{http://schemas.xmlsoap.org/ws/2004/09/enumeration}"
B = "{http://schemas.dmtf.org/wbem/wsman/1/cimbinding.xsd}"
XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"

REPLICA = "HV-REPLICA"
WEB01 = "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B02"  # on, Replicating, 4 recovery points


class Client:
    """pypsrp against one host of one world of the simulator, plus that world's control API."""

    def __init__(self, url):
        self.addr, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
        self.port = int(port)
        self.world = "om-" + uuid.uuid4().hex[:12]
        self.wsman = WSMan(self.addr, port=self.port, path=f"worlds/{self.world}/wsman", ssl=False,
                           auth="basic", encryption="never", username="admin", password="admin")

    def control(self, method, endpoint, body=None):
        import json
        import urllib.request
        req = urllib.request.Request(
            f"http://{self.addr}:{self.port}/worlds/{self.world}/_replica/v1/{endpoint}",
            data=None if body is None else json.dumps(body).encode(), method=method,
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status

    def enumerate(self, uri, filter_el):
        """Enumerate + Pull to the end; every item element."""
        enum = ET.Element(N + "Enumerate")
        enum.append(filter_el)
        context = self.wsman.enumerate(uri, enum).findtext(f"{N}EnumerateResponse/{N}EnumerationContext")
        items = []
        while context:
            pull = ET.Element(N + "Pull")
            ET.SubElement(pull, N + "EnumerationContext").text = context
            ET.SubElement(pull, N + "MaxElements").text = "20"
            response = self.wsman.pull(uri, pull).find(N + "PullResponse")
            items += list(response.find(N + "Items"))
            context = response.findtext(N + "EnumerationContext")
        return items

    def wql(self, text):
        f = ET.Element(W + "Filter", Dialect=WQL)
        f.text = text
        return self.enumerate(V2 + "*", f)

    def invoke(self, cls, keys, method, params=()):
        uri = V2 + cls
        selectors = SelectorSet()
        for k, v in keys:
            selectors.add_option(k, v)
        body = ET.Element(f"{{{uri}}}{method}_INPUT")
        for name, build in params:
            build(ET.SubElement(body, f"{{{uri}}}{name}"))
        return uri, self.wsman.invoke(f"{uri}/{method}", uri, body, selector_set=selectors).find(
            f".//{{{uri}}}{method}_OUTPUT")


def vm_epr(parent, vm):
    ET.SubElement(parent, A + "Address").text = ANONYMOUS
    ref = ET.SubElement(parent, A + "ReferenceParameters")
    ET.SubElement(ref, W + "ResourceURI").text = V2 + "Msvm_ComputerSystem"
    keys = ET.SubElement(ref, W + "SelectorSet")
    ET.SubElement(keys, W + "Selector", Name="CreationClassName").text = "Msvm_ComputerSystem"
    ET.SubElement(keys, W + "Selector", Name="Name").text = vm


def props(item):
    """{local name: text or None (xsi:nil)} of an instance element."""
    return {p.tag.split("}")[1]: (None if p.get(XSI_NIL) == "true" else p.text) for p in item}


def libvirt_required():
    """fixtures/classes/libvirt-required.txt: class -> property names."""
    out, cls = {}, None
    for line in (ROOT / "fixtures/classes/libvirt-required.txt").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line.startswith("class "):
            cls = line.split()[1]
            out[cls] = []
        elif line.strip() == "end":
            cls = None
        else:
            out[cls] += line.split()
    return out


@pytest.fixture
def replica(start_sim):
    return Client(start_sim("--clock", "manual").replica)


def failover_job(c, fail=False):
    """Starts InitiateFailover of web-01 on the replica (optionally planned to fail); its job id."""
    if fail:
        assert c.control("POST", "faults", {"kind": "fail_job", "method": "InitiateFailover",
                                            "error_code": 32779, "description": "injected",
                                            "after_percent": 0}) == 201
    svc = [("CreationClassName", "Msvm_ReplicationService"), ("Name", "replicasvc"),
           ("SystemCreationClassName", "Msvm_ComputerSystem"), ("SystemName", REPLICA)]
    uri, out = c.invoke("Msvm_ReplicationService", svc, "InitiateFailover",
                        [("ComputerSystem", lambda el: vm_epr(el, WEB01))])
    assert out.findtext(f"{{{uri}}}ReturnValue") == "4096"
    return out.findtext(f"{{{uri}}}Job/{A}ReferenceParameters/{W}SelectorSet/{W}Selector[@Name='InstanceID']")


def test_every_libvirt_required_property_is_present(replica):
    failover_job(replica)  # so that a job exists
    for cls, required in libvirt_required().items():
        items = replica.wql(f"SELECT * FROM {cls}")
        assert items, cls
        for item in items:
            missing = [p for p in required if p not in props(item)]
            assert not missing, f"{cls}: {missing}"


def test_association_filter_both_ways(replica):
    def associated(obj_build, **names):
        f = ET.Element(W + "Filter", Dialect=ASSOCIATION)
        inner = ET.SubElement(f, B + "AssociatedInstances")
        obj_build(ET.SubElement(inner, B + "Object"))
        for k, v in names.items():
            ET.SubElement(inner, B + k).text = v
        return replica.enumerate(V2 + "*", f)

    rels = associated(lambda o: vm_epr(o, WEB01), AssociationClassName="Msvm_SystemReplicationRelationship",
                      ResultClassName="Msvm_ReplicationRelationship")
    assert [props(r)["ReplicationState"] for r in rels] == ["3"]
    settings = associated(lambda o: vm_epr(o, WEB01), AssociationClassName="Msvm_SettingsDefineState")
    assert [props(s)["VirtualSystemType"] for s in settings] == ["Microsoft:Hyper-V:System:Realized"]
    points = associated(lambda o: vm_epr(o, WEB01), AssociationClassName="Msvm_SnapshotOfVirtualSystem")
    assert len(points) == 4

    # And back, from the relationship to its VM.
    rel_id = props(rels[0])["InstanceID"]

    def rel_epr(o):
        ET.SubElement(o, A + "Address").text = ANONYMOUS
        ref = ET.SubElement(o, A + "ReferenceParameters")
        ET.SubElement(ref, W + "ResourceURI").text = V2 + "Msvm_ReplicationRelationship"
        ET.SubElement(ET.SubElement(ref, W + "SelectorSet"), W + "Selector", Name="InstanceID").text = rel_id

    vms = associated(rel_epr, ResultClassName="Msvm_ComputerSystem", ResultRole="Antecedent")
    assert [props(v)["Name"] for v in vms] == [WEB01]

    # AssociationInstances: the association objects themselves, with their references.
    f = ET.Element(W + "Filter", Dialect=ASSOCIATION)
    inner = ET.SubElement(f, B + "AssociationInstances")
    vm_epr(ET.SubElement(inner, B + "Object"), WEB01)
    ET.SubElement(inner, B + "ResultClassName").text = "Msvm_ElementSettingData"
    links = replica.enumerate(V2 + "*", f)
    targets = sorted(l.find(f".//{W}ResourceURI[.='{V2}Msvm_ComputerSystem']/../..") is not None for l in links)
    # Replication settings, the template for extending it (docs/object-model.md) and the
    # authorization entry.
    assert len(links) == 3 and all(targets), "settings, extension template, authorization entry"


class RawSelectorSet(SelectorSet):
    """pypsrp's SelectorSet with a prepared w:SelectorSet element: the header builder only
    calls pack(), so a set whose selectors hold nested EPRs goes out as written."""

    def __init__(self, element):
        super().__init__()
        self.element = element

    def pack(self):
        return self.element


def test_get_association_instance_by_its_references(replica):
    """Issue 16: an association instance is named by references. EnumerateEPR gives its key
    selectors as nested a:EndpointReference elements; pypsrp's Get with that selector set
    returns the instance; a reference to nothing is w:DestinationUnreachable, as for any
    class (DSP0226: a selector's value may be an EPR; DSP0227: association keys are
    references)."""
    mode = ET.Element(W + "EnumerationMode")
    mode.text = "EnumerateEPR"
    eprs = replica.enumerate(V2 + "Msvm_HostedService", mode)
    assert len(eprs) == 2, "the replication service and the VSMS"
    for epr in eprs:
        selectors = epr.find(f"{A}ReferenceParameters/{W}SelectorSet")
        names = sorted(s.get("Name") for s in selectors)
        assert names == ["Antecedent", "Dependent"]
        assert all(s.find(A + "EndpointReference") is not None for s in selectors)
        got = replica.wsman.get(V2 + "Msvm_HostedService", selector_set=RawSelectorSet(selectors))
        instance = got.find(f"{{{V2}Msvm_HostedService}}Msvm_HostedService")
        dependent = instance.find(f"{{{V2}Msvm_HostedService}}Dependent")
        wanted = selectors.find(f"{W}Selector[@Name='Dependent']//{W}Selector[@Name='CreationClassName']").text
        assert dependent.find(f".//{W}Selector[@Name='CreationClassName']").text == wanted
    # The same references, one naming a service that does not exist.
    selectors = eprs[0].find(f"{A}ReferenceParameters/{W}SelectorSet")
    selectors.find(f"{W}Selector[@Name='Dependent']//{W}Selector[@Name='Name']").text = "nosuchsvc"
    with pytest.raises(WSManFaultError) as missing:
        replica.wsman.get(V2 + "Msvm_HostedService", selector_set=RawSelectorSet(selectors))
    assert missing.value.code == 2150858752


def test_association_filter_include_result_property(replica):
    """DSP0227 §8.2's b:IncludeResultProperty: only the named properties come back (a name the
    class does not define is ignored, as in CIM's PropertyList); without it, all of them."""
    def linked(kind, *include):
        f = ET.Element(W + "Filter", Dialect=ASSOCIATION)
        inner = ET.SubElement(f, B + kind)
        vm_epr(ET.SubElement(inner, B + "Object"), WEB01)
        ET.SubElement(inner, B + "ResultClassName").text = (
            "Msvm_ReplicationRelationship" if kind == "AssociatedInstances" else "Msvm_SystemReplicationRelationship")
        for name in include:
            ET.SubElement(inner, B + "IncludeResultProperty").text = name
        return replica.enumerate(V2 + "*", f)

    [rel] = linked("AssociatedInstances", "ReplicationState", "InstanceID", "NoSuchProperty")
    assert sorted(props(rel)) == ["InstanceID", "ReplicationState"]
    assert props(rel)["ReplicationState"] == "3"
    [full] = linked("AssociatedInstances")
    assert len(props(full)) > 2
    [link] = linked("AssociationInstances", "Dependent")
    assert sorted(props(link)) == ["Dependent"]


def test_wql_associators_references_and_dialects(replica):
    vm = f"Msvm_ComputerSystem.CreationClassName='Msvm_ComputerSystem',Name='{WEB01}'"
    rsd = replica.wql(f"ASSOCIATORS OF {{{vm}}} WHERE AssocClass = Msvm_ElementSettingData "
                      f"ResultClass = Msvm_ReplicationSettingData")
    # Its settings first, then the template for extending it (\HVR\1).
    assert [props(r)["InstanceID"][-1] for r in rsd] == ["0", "1"]
    assert props(rsd[0])["ReplicationInterval"] == "300"
    refs = replica.wql(f"REFERENCES OF {{{vm}}} WHERE ResultClass = Msvm_SystemReplicationRelationship")
    assert len(refs) == 1
    jobs = replica.wql("SELECT InstanceID, JobState FROM CIM_ConcreteJob WHERE JobState <> 7 OR ErrorCode > 0")
    assert jobs == []
    with pytest.raises(WSManFaultError) as unknown:
        replica.wql("ASSOCIATORS OF {Msvm_ComputerSystem.CreationClassName='Msvm_ComputerSystem',Name='NONE'}")
    assert "does not exist" in str(unknown.value)
    xpath = ET.Element(W + "Filter", Dialect="http://www.w3.org/TR/1999/REC-xpath-19991116")
    xpath.text = "/"
    with pytest.raises(WSManFaultError) as dialect:
        replica.enumerate(V2 + "Msvm_ComputerSystem", xpath)
    assert "2150858777" in str(dialect.value.code) or "dialect" in str(dialect.value)


def test_wql_traversal_keywords(replica):
    """The other WHERE keywords of WMI's "ASSOCIATORS OF" / "REFERENCES OF" pages: KeysOnly
    (the WQL keyword table), RequiredQualifier and RequiredAssocQualifier against the class
    qualifiers the class pages list, and ClassDefsOnly, which asks for class definitions and
    is refused with the filter fault."""
    vm = f"Msvm_ComputerSystem.CreationClassName='Msvm_ComputerSystem',Name='{WEB01}'"
    [rel] = replica.wql(f"ASSOCIATORS OF {{{vm}}} WHERE AssocClass = Msvm_SystemReplicationRelationship KeysOnly")
    assert list(props(rel)) == ["InstanceID"]
    everything = replica.wql(f"ASSOCIATORS OF {{{vm}}}")
    aggregated = replica.wql(f"ASSOCIATORS OF {{{vm}}} WHERE RequiredAssocQualifier = Aggregation")
    # Msvm_SettingsDefineState and Msvm_ServiceAffectsElement are the pages without Aggregation.
    assert len(aggregated) == len(everything) - 2
    assert replica.wql(f"ASSOCIATORS OF {{{vm}}} WHERE RequiredQualifier = Dynamic KeysOnly") != []
    assert replica.wql(f"ASSOCIATORS OF {{{vm}}} WHERE RequiredQualifier = Association") == []
    refs = replica.wql(f"REFERENCES OF {{{vm}}} WHERE RequiredQualifier = Association")
    assert len(refs) == len(replica.wql(f"REFERENCES OF {{{vm}}}"))
    with pytest.raises(WSManFaultError) as defs:
        replica.wql(f"ASSOCIATORS OF {{{vm}}} WHERE ClassDefsOnly")
    assert defs.value.code == 2150858778  # w:CannotProcessFilter


def test_get_error_ex_after_a_failing_job(replica):
    job_id = failover_job(replica, fail=True)
    replica.control("POST", "clock", {"advance_ms": 1})
    uri, out = replica.invoke("Msvm_ConcreteJob", [("InstanceID", job_id)], "GetErrorEx")
    assert out.findtext(f"{{{uri}}}ReturnValue") == "0"
    errors = [e.text for e in out.findall(f"{{{uri}}}Errors")]
    assert len(errors) == 1
    instance = ET.fromstring(errors[0])
    assert instance.get("CLASSNAME") == "Msvm_Error"
    got = {p.get("NAME"): p.findtext("VALUE") for p in instance}
    # Every property of the class page (fixtures/classes/pages.mof), present.
    page = (ROOT / "fixtures/classes/pages.mof").read_text()
    block = re.search(r"class Msvm_Error : CIM_Error\s*\{(.*?)\};", page, re.S).group(1)
    declared = [re.sub(r"\[\]$", "", line.split()[1].rstrip(";")) for line in block.strip().splitlines()]
    assert sorted(got) == sorted(declared)
    assert got["MessageID"] == "32779" and got["Message"] == "injected"
    assert got["ErrorSource"].endswith(f'Msvm_ComputerSystem.CreationClassName="Msvm_ComputerSystem",Name="{WEB01}"')
    assert got["ErrorSourceFormat"] == "0"


@pytest.mark.parametrize("client", ["pypsrp", "pywinrm"])
def test_both_clients_walk_associators_with_complete_instances(sim, client):
    """The same walk through wmi.py's two client wrappers (pypsrp and pywinrm, Basic auth):
    WQL ASSOCIATORS OF from a VM to its active settings and its relationship, each instance
    carrying every property libvirt requires of its class."""
    from wmi import PypsrpHost, PywinrmHost
    host = (PypsrpHost if client == "pypsrp" else PywinrmHost)(sim.replica)
    vm = f"Msvm_ComputerSystem.CreationClassName='Msvm_ComputerSystem',Name='{WEB01}'"
    required = libvirt_required()
    settings = host.query(f"ASSOCIATORS OF {{{vm}}} WHERE AssocClass = Msvm_SettingsDefineState "
                          f"ResultClass = Msvm_VirtualSystemSettingData")
    assert [s["VirtualSystemType"] for s in settings] == ["Microsoft:Hyper-V:System:Realized"]
    assert not [p for p in required["Msvm_VirtualSystemSettingData"] if p not in settings[0]]
    systems = host.query(f"ASSOCIATORS OF {{{vm}}} WHERE ResultClass = CIM_ComputerSystem")
    assert systems == []  # web-01 has no test replica: nothing links it to another system
    vms = host.query("SELECT * FROM CIM_ComputerSystem WHERE ReplicationMode = 2")
    assert {v["ElementName"] for v in vms} == {"app-01", "web-01", "db-01"}
    assert all(not [p for p in required["Msvm_ComputerSystem"] if p not in v] for v in vms)
