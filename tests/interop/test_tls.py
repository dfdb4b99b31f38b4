"""HTTPS (`serve --tls`, `--tls-cert/--tls-key`) with real clients: pypsrp with ssl=True, and
pywinrm on an https:// endpoint. A self-signed certificate with validation off, and a provided
certificate that validates against its CA."""

import datetime
import ipaddress

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from wmi import PypsrpHost, PywinrmHost, vm_ref


def test_pypsrp_over_https_with_the_generated_certificate(start_sim):
    sim = start_sim("--tls", "--clock", "manual")
    assert sim.replica.startswith("https://127.0.0.1:")
    replica = PypsrpHost(sim.replica, cert_validation=False)
    vm = replica.vm("app-01")
    assert vm["ReplicationState"] == "3"
    code, job, _ = replica.call(replica.service(), "InitiateFailover", ComputerSystem=vm_ref(vm["Name"]))
    assert code == 4096 and job
    assert replica.job(job)["JobState"] in {"2", "3", "4"}  # time stands still: New or running
    # pywinrm too, on the other host.
    primary = PywinrmHost(sim.primary, server_cert_validation="ignore")
    assert primary.vm("web-01")["ReplicationState"] == "3"
    # Validation on: the self-signed certificate is refused by the client.
    with pytest.raises(requests.exceptions.SSLError):
        PypsrpHost(sim.replica, cert_validation=True)
    # Plain HTTP on the TLS port gets no HTTP answer.
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(sim.replica.replace("https://", "http://"), data=b"<x/>", timeout=5)


def _ca_and_leaf(tmp_path):
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "replica-sim interop CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return paths


def test_pypsrp_validates_a_provided_certificate_against_its_ca(start_sim, tmp_path):
    paths = _ca_and_leaf(tmp_path)
    sim = start_sim("--tls-cert", str(paths["cert"]), "--tls-key", str(paths["key"]))
    replica = PypsrpHost(sim.replica, cert_validation=str(paths["ca"]))
    assert replica.vm("web-01")["ReplicationState"] == "3"
