"""Windows authentication with the real clients: pypsrp at its defaults (Negotiate: NTLM inside
SPNEGO, message encryption over HTTP) and pywinrm with transport="ntlm" (raw NTLM under the
Negotiate scheme, message encryption) next to Basic; wrong passwords refused under every scheme;
read-only and denied credentials under Negotiate; `--auth` turning a scheme off."""

import subprocess

import pytest
from pypsrp.exceptions import AuthenticationError
from winrm.exceptions import InvalidCredentialsError

from replica_sim import find_binary as binary
from wmi import PypsrpHost, PywinrmHost, vm_ref

CLIENTS = {
    "pypsrp negotiate (SPNEGO)": lambda url, u, p: PypsrpHost(url, u, p),
    "pypsrp basic": lambda url, u, p: PypsrpHost(url, u, p, auth="basic"),
    "pywinrm ntlm (raw NTLM)": lambda url, u, p: PywinrmHost(url, u, p),
    "pywinrm basic": lambda url, u, p: PywinrmHost(url, u, p, transport="basic"),
}
REFUSED = (AuthenticationError, InvalidCredentialsError)


@pytest.mark.parametrize("client", CLIENTS)
def test_every_scheme_authenticates_and_refuses_wrong_passwords(sim, client):
    connect = CLIENTS[client]
    assert connect(sim.replica, "admin", "admin").vm("web-01")["ReplicationState"] == "3"
    for user, password in [("admin", "wrong"), ("nobody-at-all", "admin"), ("admin", "ADMIN")]:
        with pytest.raises(REFUSED):
            connect(sim.replica, user, password)


def test_user_names_are_case_insensitive_under_negotiate(sim):
    assert PypsrpHost(sim.primary, "ADMIN", "admin").name == "HV-PRIMARY"
    assert PywinrmHost(sim.primary, "WORKGROUP\\Admin", "admin").name == "HV-PRIMARY"


def test_read_only_and_denied_credentials_under_negotiate(start_sim):
    sim = start_sim("--read-only-credentials", "viewer:viewer", "--denied-credentials", "nobody:nobody")
    viewer = PypsrpHost(sim.replica, "viewer", "viewer")
    vm = viewer.vm("web-01")
    code, job, _ = viewer.call(viewer.service(), "InitiateFailover", ComputerSystem=vm_ref(vm["Name"]))
    assert (code, job) == (32769, None)
    # Denied: authenticated (no 401), then WMI refuses: the AccessDenied fault, sealed like any reply.
    from winrm.exceptions import WSManFaultError
    with pytest.raises(WSManFaultError) as fault:
        PywinrmHost(sim.replica, "nobody", "nobody")
    assert (fault.value.code, fault.value.fault_subcode, fault.value.wsman_fault_code) == (500, "w:AccessDenied", 5)


def test_negotiate_only_serves_default_clients_and_refuses_basic_and_clear_text(start_sim):
    sim = start_sim("--auth", "negotiate")
    assert PypsrpHost(sim.replica).vm("web-01")["ReplicationState"] == "3"
    assert PywinrmHost(sim.primary).vm("app-01")["ReplicationState"] == "3"
    with pytest.raises(REFUSED):
        PypsrpHost(sim.replica, auth="basic")
    # NTLM without message encryption over HTTP: WinRM with AllowUnencrypted=false says 401.
    from winrm.protocol import Protocol
    clear = PywinrmHost.__new__(PywinrmHost)
    clear.protocol = Protocol(sim.replica, transport="ntlm", username="admin", password="admin",
                              message_encryption="never")
    with pytest.raises(InvalidCredentialsError):
        clear.service()


def test_basic_only_turns_negotiate_away(start_sim):
    sim = start_sim("--auth", "basic")
    assert PypsrpHost(sim.replica, auth="basic").vm("web-01")["ReplicationState"] == "3"
    with pytest.raises(AuthenticationError, match="did not response with one of the following"):
        PypsrpHost(sim.replica)


def test_plain_http_is_never_served_on_5986():
    done = subprocess.run([binary(), "serve", "--listen", "127.0.0.1:5986"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "5986" in done.stderr and "--tls" in done.stderr
