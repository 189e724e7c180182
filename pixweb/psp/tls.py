"""The merchant's TLS material: checked PEMs, the mTLS context, certificate facts, .p12 files.

The standard library loads a client certificate only from a file. The key is written to an
anonymous in-memory file (`memfd_create`, Linux) that never appears in a directory, or else
to a 0600 temporary file removed as soon as OpenSSL has read it.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import certifi
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from pixweb.errors import InvalidInputError

# TLS alerts a server sends when it refuses the client's certificate.
_CLIENT_CERTIFICATE_ALERTS = (
    "CERTIFICATE_REQUIRED",
    "BAD_CERTIFICATE",
    "UNKNOWN_CA",
    "CERTIFICATE_EXPIRED",
    "CERTIFICATE_REVOKED",
    "CERTIFICATE_UNKNOWN",
    "UNSUPPORTED_CERTIFICATE",
    "ACCESS_DENIED",
)
# Not failures of TLS itself: a read that must wait (seen under timeouts), a clean close.
_NOT_FAILURES = (ssl.SSLWantReadError, ssl.SSLWantWriteError, ssl.SSLZeroReturnError)
CLIENT_CERTIFICATE_REFUSED = (
    "the PSP refused the client certificate (it closed the connection right after the TLS "
    "handshake without answering): use the certificate the PSP issued for these credentials, "
    "not expired, with its private key"
)


def _invalid(field: str, message: str) -> InvalidInputError:
    return InvalidInputError(f"{field} {message}", fields={field: message})


def _certificates(pem: str, field: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise _invalid(field, "is not a PEM certificate (-----BEGIN CERTIFICATE-----)") from None


def _pem(certificates: list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def client_identity(certificate_pem: str, private_key_pem: str) -> bytes:
    """The key (unencrypted PKCS#8) and the certificate chain, leaf first, as one PEM, after
    checking both parse and belong together; InvalidInputError naming the field otherwise."""
    chain = _certificates(certificate_pem, "certificate_pem")
    try:
        key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    except TypeError:
        raise _invalid("private_key_pem", "is encrypted: give it without a passphrase") from None
    except (ValueError, UnsupportedAlgorithm):
        raise _invalid("private_key_pem", "is not a PEM private key") from None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != chain[0].public_key().public_bytes(*spki):
        raise _invalid("private_key_pem", "does not match the certificate in certificate_pem")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem + _pem(chain)


@contextlib.contextmanager
def _transient_file(data: bytes) -> Iterator[str]:
    """A path holding `data` only while the block runs."""
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fd = os.memfd_create("pixweb-tls", os.MFD_CLOEXEC)
        try:
            with open(fd, "wb", closefd=False) as file:
                file.write(data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    fd, path = tempfile.mkstemp(prefix="pixweb-tls-")  # 0600
    try:
        with open(fd, "wb") as file:
            file.write(data)
        yield path
    finally:
        os.unlink(path)


def build_ssl_context(
    certificate_pem: str, private_key_pem: str, server_ca_pem: str | None = None
) -> ssl.SSLContext:
    """A client context for mTLS: presents the merchant's certificate; trusts the PSP's own
    CA chain when given (homologation environments), else the public CAs (certifi)."""
    identity = client_identity(certificate_pem, private_key_pem)
    if server_ca_pem:
        cadata = _pem(_certificates(server_ca_pem, "server_ca_pem")).decode()
        context = ssl.create_default_context(cadata=cadata)
    else:
        context = ssl.create_default_context(cafile=certifi.where())
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with _transient_file(identity) as path:
        context.load_cert_chain(path)
    return context


@dataclass(frozen=True)
class CertificateInfo:
    subject: str
    issuer: str
    not_after: datetime  # aware, UTC


def certificate_info(certificate_pem: str) -> CertificateInfo:
    """What the dashboard shows about the client certificate: whose it is and when it expires."""
    leaf = _certificates(certificate_pem, "certificate_pem")[0]
    return CertificateInfo(
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        not_after=leaf.not_valid_after_utc,
    )


def pkcs12_to_pem(data: bytes, password: str | None) -> tuple[str, str]:
    """A bank's .p12 file as (certificate_pem with its chain, private_key_pem)."""
    try:
        key, leaf, extra = pkcs12.load_key_and_certificates(
            data, password.encode() if password else None
        )
    except ValueError:
        raise _invalid("p12", "cannot be read: not a PKCS#12 file, or a wrong password") from None
    if key is None or leaf is None:
        raise _invalid("p12", "must hold a certificate and its private key")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return _pem([leaf, *extra]).decode(), key_pem.decode()


def describe_tls_failure(error: BaseException, *, handshake: bool) -> str | None:
    """Say what went wrong in the TLS layer, if an SSL error in the exception's chain tells:
    an untrusted server, a TLS alert refusing the client's certificate (which TLS 1.3 servers
    send after the handshake), or, while connecting (`handshake`), any other TLS failure."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return (
                f"the PSP's server certificate is not trusted ({seen.verify_message}): if the "
                "PSP uses its own CA (homologation), give its CA chain as server_ca_pem"
            )
        if isinstance(seen, ssl.SSLError) and not isinstance(seen, _NOT_FAILURES):
            reason = seen.reason or str(seen)
            if "ALERT" in reason and any(a in reason for a in _CLIENT_CERTIFICATE_ALERTS):
                return f"the PSP refused the client certificate (TLS alert {reason})"
            if handshake:
                return f"the TLS handshake with the PSP failed ({reason})"
        seen = seen.__cause__ or seen.__context__
    return None
