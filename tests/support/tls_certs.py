"""Test PKI for pooled's TLS tests, generated at test time (no private key is ever
committed): a test CA, an unrelated CA, and certificates for a loopback TLS origin.

    certs = make_test_pki(directory)
    certs["ca"], certs["server_cert"], certs["server_key"], ...   (file paths)

Every key is ECDSA P-256, cheap to make and to handshake with, except the optional
`rsa_server` leaf (make_test_pki(directory, rsa_server=True)) for RSA-only suites.
"""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def _write_key(path, key):
    return _write(path, key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))


def _write_cert(path, cert):
    return _write(path, cert.public_bytes(serialization.Encoding.PEM))


def _ca(cn):
    key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def _leaf(ca_key, ca_cert, cn, dns_names=(), ips=(), client=False, expired=False, rsa_key=False):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if rsa_key else _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    if expired:
        before, after = now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)
    else:
        before, after = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
    builder = (x509.CertificateBuilder()
               .subject_name(_name(cn)).issuer_name(ca_cert.subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(before).not_valid_after(after)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(
                   [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
                   critical=False))
    sans = [x509.DNSName(d) for d in dns_names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def make_test_pki(directory, rsa_server=False):
    """Writes the test PKI into `directory`; returns {name: path}."""
    os.makedirs(directory, exist_ok=True)
    out = {}

    def save(name, key, cert):
        out[name + "_key"] = _write_key(os.path.join(directory, name + ".key"), key)
        out[name + "_cert"] = _write_cert(os.path.join(directory, name + ".crt"), cert)

    ca_key, ca_cert = _ca("pooled test CA")
    out["ca"] = _write_cert(os.path.join(directory, "ca.crt"), ca_cert)
    other_key, other_cert = _ca("unrelated test CA")
    out["other_ca"] = _write_cert(os.path.join(directory, "other-ca.crt"), other_cert)

    save("server", *_leaf(ca_key, ca_cert, "localhost", ["localhost"], ["127.0.0.1"]))
    save("wrong_name", *_leaf(ca_key, ca_cert, "wrong.example", ["wrong.example"]))
    # A name but no IP SAN; the CN spells the address, which must not count for it.
    save("dns_only", *_leaf(ca_key, ca_cert, "127.0.0.1", ["localhost"]))
    save("expired", *_leaf(ca_key, ca_cert, "localhost", ["localhost"], ["127.0.0.1"], expired=True))
    save("unknown_ca", *_leaf(other_key, other_cert, "localhost", ["localhost"], ["127.0.0.1"]))
    save("client", *_leaf(ca_key, ca_cert, "pooled client", client=True))
    save("other_client", *_leaf(other_key, other_cert, "stranger", client=True))
    if rsa_server:
        save("rsa_server", *_leaf(ca_key, ca_cert, "localhost", ["localhost"], rsa_key=True))
    return out
