"""Bad requests get WinRM's faults: HTTP 500, a SOAP 1.2 Fault whose subcode resolves to the
right namespace URI, f:WSManFault with its Code, a:RelatesTo echoing the MessageID, and never a
200 or a crash. Checked on the raw HTTP answer, then as pypsrp and pywinrm report them."""

import io
import uuid
import xml.etree.ElementTree as ET

import pytest
import requests
from pypsrp.exceptions import AuthenticationError
from pypsrp.exceptions import WSManFaultError as PypsrpFault
from winrm.exceptions import InvalidCredentialsError
from winrm.exceptions import WSManFaultError as PywinrmFault
from wmi import NS, V2, WQL, PypsrpHost, PywinrmHost, vm_ref

SOAP, ADDR, WSMAN, ENUM = NS["s"], NS["a"], NS["w"], NS["n"]
GET = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get"
ENUMERATE = ENUM + "/Enumerate"
APP01 = "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B01"
SVC = V2 + "Msvm_ReplicationService"
SVC_KEYS = [("CreationClassName", "Msvm_ReplicationService"), ("Name", "replicasvc"),
            ("SystemCreationClassName", "Msvm_ComputerSystem"), ("SystemName", "HV-PRIMARY")]
VM_KEYS = [("CreationClassName", "Msvm_ComputerSystem"), ("Name", APP01)]


def envelope(action, resource, selectors=(), body="", header="", max_envelope=153600, timeout="PT20S"):
    mid = f"uuid:{str(uuid.uuid4()).upper()}"
    sel = "".join(f'<w:Selector Name="{k}">{v}</w:Selector>' for k, v in selectors)
    sel = f"<w:SelectorSet>{sel}</w:SelectorSet>" if sel else ""
    xml = (f'<s:Envelope xmlns:s="{SOAP}" xmlns:a="{ADDR}" xmlns:w="{WSMAN}" xmlns:n="{ENUM}"><s:Header>'
           f'<a:To>http://127.0.0.1:5985/wsman</a:To><w:ResourceURI s:mustUnderstand="true">{resource}</w:ResourceURI>'
           f'<a:ReplyTo><a:Address s:mustUnderstand="true">{NS["a"]}/role/anonymous</a:Address></a:ReplyTo>'
           f'<a:Action s:mustUnderstand="true">{action}</a:Action>'
           f'<w:MaxEnvelopeSize s:mustUnderstand="true">{max_envelope}</w:MaxEnvelopeSize>'
           f'<a:MessageID>{mid}</a:MessageID><w:OperationTimeout>{timeout}</w:OperationTimeout>{sel}{header}'
           f'</s:Header><s:Body>{body}</s:Body></s:Envelope>')
    return xml, mid


def wql(query):
    return envelope(ENUMERATE, V2 + "*", body=f'<n:Enumerate><w:Filter Dialect="{WQL}">{query}</w:Filter></n:Enumerate>')


def invoke(method, body=None):
    body = body if body is not None else f'<p:{method}_INPUT xmlns:p="{SVC}"/>'
    return envelope(f"{SVC}/{method}", SVC, SVC_KEYS, body)


# (id, request, subcode namespace, subcode local name, f:WSManFault Code)
CASES = [
    ("invalid-selector", envelope(GET, V2 + "Msvm_ComputerSystem", [("Colour", "blue")]), WSMAN, "InvalidSelectors", 2150858843),
    ("missing-selectors", envelope(GET, V2 + "Msvm_ComputerSystem"), WSMAN, "InvalidSelectors", 2150858842),
    ("unknown-class", envelope(GET, V2 + "Msvm_Bogus", [("Name", "x")]), ADDR, "DestinationUnreachable", 2150858752),
    ("unknown-instance", envelope(GET, V2 + "Msvm_ConcreteJob", [("InstanceID", "NO-SUCH-JOB")]), ADDR, "DestinationUnreachable", 2150858752),
    ("schema-enumerate-body", envelope(ENUMERATE, SVC, body="<n:Pull/>"), WSMAN, "SchemaValidationError", 2150858817),
    ("schema-wrong-input", invoke("CommitFailover", f'<p:RevertFailover_INPUT xmlns:p="{SVC}"/>'), WSMAN, "SchemaValidationError", 2150858817),
    ("unknown-parameter", invoke("CommitFailover", f'<p:CommitFailover_INPUT xmlns:p="{SVC}"><p:Force>1</p:Force></p:CommitFailover_INPUT>'), WSMAN, "InvalidParameter", 87),
    ("put", envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/Put", V2 + "Msvm_ComputerSystem", VM_KEYS), ADDR, "ActionNotSupported", 2150858771),
    ("unknown-method", invoke("InitiateFailbackEx"), ADDR, "ActionNotSupported", 2150858771),
    ("response-over-max-envelope", envelope(GET, V2 + "Msvm_ComputerSystem", VM_KEYS, max_envelope=1024), WSMAN, "EncodingLimit", 2150858824),
    ("request-over-max-envelope", envelope(GET, V2 + "Msvm_ComputerSystem", VM_KEYS, header=f'<x:Pad xmlns:x="urn:pad">{"x" * 600_000}</x:Pad>'), WSMAN, "EncodingLimit", 2150858824),
    ("wql-syntax", wql("SELECT * FORM Msvm_ComputerSystem"), ENUM, "CannotProcessFilter", 2150858778),
    ("wql-class", wql("SELECT * FROM Win32_Process"), ENUM, "CannotProcessFilter", 2150858778),
    ("wql-property", wql("SELECT * FROM Msvm_ConcreteJob WHERE Colour = 'blue'"), ENUM, "CannotProcessFilter", 2150858778),
    ("must-understand", envelope(GET, V2 + "Msvm_ComputerSystem", VM_KEYS, header='<z:T xmlns:z="urn:z" s:mustUnderstand="true"/>'), SOAP, "MustUnderstand", 2150858768),
    ("bad-operation-timeout", envelope(GET, V2 + "Msvm_ComputerSystem", VM_KEYS, timeout="PT-1S"), ADDR, "InvalidMessageInformationHeader", 2150858767),
    ("unknown-enumeration-context", envelope(ENUM + "/Pull", V2 + "*", body="<n:Pull><n:EnumerationContext>uuid:nope</n:EnumerationContext></n:Pull>"), ENUM, "InvalidEnumerationContext", 2150858779),
]


def post(url, xml, auth=("admin", "admin")):
    data = xml.encode() if isinstance(xml, str) else xml
    return requests.post(url, data=data, auth=auth, timeout=30,
                         headers={"Content-Type": "application/soap+xml;charset=UTF-8"})


def read_fault(response):
    """(HTTP status, (subcode namespace, local name), WSManFault Code, RelatesTo) of a fault answer."""
    prefixes = {}
    for event, item in ET.iterparse(io.BytesIO(response.content), events=("start-ns",)):
        prefixes.setdefault(item[0], item[1])
    root = ET.fromstring(response.content)
    fault = root.find("s:Body/s:Fault", NS)
    assert fault is not None, response.text
    value = fault.findtext("s:Code/s:Subcode/s:Value", namespaces=NS) or fault.findtext("s:Code/s:Value", namespaces=NS)
    prefix, local = value.split(":")
    detail = fault.find("s:Detail/f:WSManFault", NS)
    return (response.status_code, (prefixes[prefix], local), int(detail.get("Code")),
            root.findtext("s:Header/a:RelatesTo", namespaces=NS))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_fault_on_the_wire(sim, case):
    _, (xml, mid), ns, local, code = case
    r = post(sim.primary, xml)
    assert r.headers["Content-Type"] == "application/soap+xml;charset=UTF-8"
    assert read_fault(r) == (500, (ns, local), code, mid)


def test_access_denied_for_credentials_without_rights(start_sim):
    sim = start_sim("--denied-credentials", "nobody:nobody")
    for xml, mid in (envelope(GET, V2 + "Msvm_ComputerSystem", VM_KEYS), wql("SELECT * FROM Msvm_ComputerSystem"),
                     invoke("CommitFailover")):
        assert read_fault(post(sim.primary, xml, auth=("nobody", "nobody"))) == (500, (WSMAN, "AccessDenied"), 5, mid)
    with pytest.raises(PypsrpFault) as e:
        PypsrpHost(sim.primary, "nobody", "nobody")
    assert e.value.code == 5


def test_not_soap_at_all(sim):
    for body in (b"", b"<s:Envelope", b"\x00\xff\xfe", b"<a/>", b"x" * (5 * 1024 * 1024),
                 b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'):
        status, (ns, local), _, relates_to = read_fault(post(sim.primary, body))
        assert status == 500 and ns == WSMAN and local in ("SchemaValidationError", "EncodingLimit")
        assert relates_to is None
    # Still answering.
    assert PypsrpHost(sim.primary).vm("app-01")["Name"] == APP01


def test_the_challenge_offers_negotiate_and_basic(sim):
    r = requests.post(sim.primary, data=b"<x/>", timeout=10)
    # Two WWW-Authenticate headers, which requests joins with ", ".
    assert (r.status_code, r.headers["WWW-Authenticate"]) == (401, 'Negotiate, Basic realm="WSMAN"')
    with pytest.raises(AuthenticationError):
        PypsrpHost(sim.primary, "admin", "wrong")
    with pytest.raises(InvalidCredentialsError):
        PywinrmHost(sim.primary, "admin", "wrong")


def test_pypsrp_reports_the_faults(sim):
    host = PypsrpHost(sim.primary)
    with pytest.raises(PypsrpFault) as e:
        host.get("Msvm_ComputerSystem", Colour="blue")
    assert (e.value.code, e.value.machine) == (2150858843, "HV-PRIMARY")
    with pytest.raises(PypsrpFault) as e:
        host.query("SELECT * FROM Msvm_Nope")
    assert e.value.code == 2150858778
    with pytest.raises(PypsrpFault) as e:
        host.call(host.service(), "Frobnicate", ComputerSystem=vm_ref(APP01))
    assert e.value.code == 2150858771


def test_pywinrm_reports_the_faults(sim):
    host = PywinrmHost(sim.primary)
    with pytest.raises(PywinrmFault) as e:
        host.get("Msvm_ComputerSystem", Name=APP01, Colour="blue")
    assert (e.value.code, e.value.fault_subcode, e.value.wsman_fault_code) == (500, "w:InvalidSelectors", 2150858843)
    with pytest.raises(PywinrmFault) as e:
        host.get("Msvm_ConcreteJob", InstanceID="NO-SUCH-JOB")
    assert (e.value.fault_subcode, e.value.wsman_fault_code) == ("a:DestinationUnreachable", 2150858752)
    with pytest.raises(PywinrmFault) as e:
        host.query("SELECT * FROM Msvm_ComputerSystem WHERE")
    assert (e.value.fault_subcode, e.value.wsman_fault_code) == ("n:CannotProcessFilter", 2150858778)
