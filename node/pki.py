"""Federation TLS PKI helpers: a CA, member certificates, fingerprints and PEM I/O.

Pure functions: no global state, the clock is always passed in. Keys are ECDSA P-256,
which gRPC's BoringSSL accepts for TLS 1.3 on both ends (Ed25519 leaf certificates are
refused by gRPC's default signature algorithm list).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CLOCK_SKEW",
    "MEMBER_SAN_PREFIX",
    "PrivateKey",
    "cert_fingerprint",
    "cert_from_pem",
    "cert_san_uris",
    "cert_to_pem",
    "issue_member_cert",
    "key_from_pem",
    "key_to_pem",
    "make_ca",
    "member_id_from_san_uri",
    "member_san_uri",
    "write_private_pem",
]

PrivateKey = ec.EllipticCurvePrivateKey
MEMBER_SAN_PREFIX = "urn:intelshare:member:"
# Certificates start slightly in the past so a peer whose clock lags still accepts them.
CLOCK_SKEW = timedelta(minutes=5)


def _key_usage(*, sign_certificates: bool) -> x509.KeyUsage:
    """A CA signs certificates and CRLs only; a member certificate signs TLS handshakes only."""
    return x509.KeyUsage(
        digital_signature=not sign_certificates,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=sign_certificates,
        crl_sign=sign_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def member_san_uri(member_id: str) -> str:
    """The SAN URI that names a federation member in its TLS certificate."""
    if not member_id or any(c.isspace() for c in member_id):
        raise ValueError(f"invalid member id: {member_id!r}")
    return MEMBER_SAN_PREFIX + member_id


def member_id_from_san_uri(uri: str) -> str | None:
    """Inverse of member_san_uri; None if uri is not a member URI."""
    if uri.startswith(MEMBER_SAN_PREFIX) and len(uri) > len(MEMBER_SAN_PREFIX):
        return uri[len(MEMBER_SAN_PREFIX) :]
    return None


def _check_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")


def _new_key() -> PrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_ca(name: str, now: datetime, valid_days: int) -> tuple[PrivateKey, x509.Certificate]:
    """Create a self-signed federation CA that may only sign end-entity certificates."""
    _check_aware(now)
    key = _new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            _key_usage(sign_certificates=True),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issue_member_cert(
    ca_key: PrivateKey,
    ca_cert: x509.Certificate,
    member_id: str,
    san_uri: str | None = None,
    dns_names: Sequence[str] = ("localhost",),
    ip_addresses: Sequence[str] = ("127.0.0.1",),
    *,
    now: datetime,
    valid_days: int,
) -> tuple[PrivateKey, x509.Certificate]:
    """Issue a member's TLS certificate (server and client use) signed by the CA.

    The member is identified by the SAN URI (default member_san_uri(member_id)); the common
    name is informational only and must never be used for authorisation.
    """
    _check_aware(now)
    uri = san_uri if san_uri is not None else member_san_uri(member_id)
    key = _new_key()
    public = key.public_key()
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri)]
    sans += [x509.DNSName(d) for d in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    not_after = min(now + timedelta(days=valid_days), ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, member_id)]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(sign_certificates=False),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def cert_to_pem(cert: x509.Certificate) -> bytes:
    """PEM encoding of a certificate."""
    return cert.public_bytes(serialization.Encoding.PEM)


def cert_from_pem(pem: bytes | str) -> x509.Certificate:
    """Load the first certificate from PEM text."""
    return x509.load_pem_x509_certificate(pem.encode("ascii") if isinstance(pem, str) else pem)


def key_to_pem(key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM; protect the file with permissions (see write_private_pem)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def key_from_pem(pem: bytes | str) -> PrivateKey:
    """Load an unencrypted P-256 private key from PEM."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("expected an ECDSA P-256 private key")
    return key


def write_private_pem(path: str | os.PathLike[str], key: PrivateKey) -> None:
    """Write key as PEM readable only by the owner (mode 0600, also if the file existed)."""
    p = Path(path)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        # O_CREAT's mode is ignored for an existing file, so tighten explicitly.
        os.fchmod(fd, 0o600)
        os.write(fd, key_to_pem(key))
        os.fsync(fd)
    finally:
        os.close(fd)


def cert_fingerprint(cert_or_pem: x509.Certificate | bytes | str) -> str:
    """Lower-case hex SHA-256 of the certificate's DER encoding."""
    cert = cert_or_pem if isinstance(cert_or_pem, x509.Certificate) else cert_from_pem(cert_or_pem)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def cert_san_uris(cert: x509.Certificate) -> tuple[str, ...]:
    """URI entries of the certificate's subjectAltName (empty if it has none)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(san.get_values_for_type(x509.UniformResourceIdentifier))
