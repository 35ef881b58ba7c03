"""TLS: the handshake a visitor's browser would make, and the facts of the certificate it got.

In: an open TCP connection's streams (or an address), the name to verify, optional extra trust
anchors. Out: a `TlsResult`: protocol version and cipher, whether the chain verified (and
OpenSSL's reason when not), and the leaf certificate's facts from `cryptography`: validity,
issuer, subject, names, days to expiry, self-signed, SPKI SHA-256 pin, hostname match.

When verification fails the facts come from a second, unverified handshake, so an expired or
self-signed certificate is still described. `legacy_protocols` probes with a client that offers
only TLS 1.0/1.1: a server that accepts is reported (empty when it refuses, or when the local
OpenSSL cannot offer them at all, which is then said in `legacy_probe`).
Hostname matching (RFC 6125: exact or one left-most wildcard label) is hand-written because the
`ssl` module only reports the first verification error, and an untrusted certificate's name
still matters; it is twelve lines.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import ipaddress
import ssl
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

WEAK_CIPHER_MARKS = ("RC4", "3DES", "DES-CBC", "NULL", "EXPORT", "MD5", "ANON")


@dataclass(frozen=True, slots=True)
class CertificateFacts:
    not_before: datetime
    not_after: datetime
    issuer: str
    subject: str
    names: tuple[str, ...]
    sha256: str
    spki_sha256: str
    self_signed: bool


@dataclass(frozen=True, slots=True)
class TlsResult:
    version: str  # "TLSv1.3"
    cipher: str
    verified: bool
    verify_code: int  # OpenSSL's X509_V_ERR_* (0 when verified)
    verify_error: str
    certificate: CertificateFacts | None
    hostname_match: bool
    weak_cipher: bool
    legacy_protocols: tuple[str, ...] = ()
    legacy_probe: str = "not run"  # "refused", "accepted", "unavailable locally", "not run"


def certificate_facts(der: bytes) -> CertificateFacts:
    """Facts of a DER certificate; raises ValueError when it cannot be parsed."""
    cert = x509.load_der_x509_certificate(der)
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [*san.get_values_for_type(x509.DNSName), *(str(ip) for ip in san.get_values_for_type(x509.IPAddress))]
    except x509.ExtensionNotFound:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return CertificateFacts(
        not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
        issuer=cert.issuer.rfc4514_string(), subject=cert.subject.rfc4514_string(), names=tuple(names),
        sha256=hashlib.sha256(der).hexdigest(), spki_sha256=hashlib.sha256(spki).hexdigest(),
        self_signed=_is_self_signed(cert),
    )


def _is_self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):  # a bad signature or an odd key type
        return False
    return True


def hostname_matches(hostname: str, names: tuple[str, ...]) -> bool:
    """RFC 6125: an exact name, or `*.example` covering exactly one left-most label; IPs exactly."""
    host = hostname.lower().rstrip(".")
    try:
        ip = ipaddress.ip_address(host)
        return any(_same_ip(ip, name) for name in names)
    except ValueError:
        pass
    for name in (n.lower().rstrip(".") for n in names):
        if name == host:
            return True
        if name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:]:
            return True
    return False


def _same_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, name: str) -> bool:
    try:
        return ipaddress.ip_address(name) == ip
    except ValueError:
        return False


@functools.lru_cache(maxsize=64)
def client_context(ca_file: Path | None, verify: bool) -> ssl.SSLContext:
    """One context per (trust anchors, verify), reused by every check: building a verifying context
    parses the system's CA store, which cost more CPU than the handshakes at 1,000 targets a minute
    (bench/watch.py). A changed `ca_file` is read again only after a restart."""
    if not verify:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx = ssl.create_default_context()
    if ca_file is not None:
        ctx.load_verify_locations(cafile=str(ca_file))
    return ctx


async def handshake(host: str, port: int, server_name: str, ctx: ssl.SSLContext,
                    timeout_s: float) -> tuple[str, str, bytes]:
    """(version, cipher, leaf DER) of one handshake; raises OSError/ssl.SSLError/TimeoutError."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=ctx, server_hostname=server_name), timeout_s)
    try:
        obj = writer.get_extra_info("ssl_object")
        if not isinstance(obj, ssl.SSLObject):
            raise ssl.SSLError(f"{server_name}: no TLS session")
        cipher = obj.cipher()
        return obj.version() or "", cipher[0] if cipher else "", obj.getpeercert(binary_form=True) or b""
    finally:
        writer.close()
        await _closed(writer)


async def _closed(writer: asyncio.StreamWriter) -> None:
    try:
        await asyncio.wait_for(writer.wait_closed(), 1.0)
    except (OSError, TimeoutError, ssl.SSLError):
        pass


async def inspect_tls(host: str, port: int, server_name: str, ca_file: Path | None, timeout_s: float,
                      probe_legacy: bool) -> TlsResult:
    """Verified handshake first; on a verification failure, an unverified one for the facts.

    Raises OSError, ssl.SSLError or TimeoutError only when no handshake at all succeeds.
    """
    code, error = 0, ""
    try:
        version, cipher, der = await handshake(host, port, server_name, client_context(ca_file, True), timeout_s)
    except ssl.SSLCertVerificationError as e:
        code, error = int(e.verify_code or -1), str(e.verify_message or e.reason or e)
        version, cipher, der = await handshake(host, port, server_name, client_context(None, False), timeout_s)
    facts = certificate_facts(der) if der else None
    legacy, probe = (await _legacy_probe(host, port, server_name, timeout_s)) if probe_legacy else ((), "not run")
    return TlsResult(
        version=version, cipher=cipher, verified=code == 0, verify_code=code, verify_error=error,
        certificate=facts, hostname_match=facts is not None and hostname_matches(server_name, facts.names),
        weak_cipher=any(mark in cipher.upper() for mark in WEAK_CIPHER_MARKS),
        legacy_protocols=legacy, legacy_probe=probe,
    )


@functools.lru_cache(maxsize=1)
def _legacy_context() -> ssl.SSLContext | None:
    """A client offering only TLS 1.0/1.1, or None when the local OpenSSL cannot."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with warnings.catch_warnings():  # offering TLS 1.0/1.1 is deprecated: that is the point of the probe
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        return None
    return ctx


async def _legacy_probe(host: str, port: int, server_name: str, timeout_s: float) -> tuple[tuple[str, ...], str]:
    ctx = _legacy_context()
    if ctx is None:
        return (), "unavailable locally"
    try:
        version, _, _ = await handshake(host, port, server_name, ctx, timeout_s)
    except ssl.SSLError as e:
        if "NO_PROTOCOLS_AVAILABLE" in str(e).upper():
            return (), "unavailable locally"
        return (), "refused"
    except (OSError, TimeoutError):
        return (), "refused"
    return (version,), "accepted"
