"""MLflow's public HTTPS address for kernels and jobs (``jupyter-mlops up --ssl-cert``).

MLflow prints its "View run" links from the tracking URI, so kernels and jobs should track
through the address people open. Behind TLS that address answers with the platform's certificate,
which a kernel's HTTP clients (requests in MLflow, httpx in jupyter_mlops.client) only accept if
they trust its issuer. The platform writes one CA bundle, the public CAs (certifi's) plus the
certificates of ``MlopsHub.ssl_cert`` (a self-signed certificate is its own issuer) and of
``MlopsHub.ssl_ca``, and points ``$REQUESTS_CA_BUNDLE`` and ``$SSL_CERT_FILE`` of users' servers,
the control plane and its jobs at it.
"""
from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

#: The variables requests (MLflow's client) and httpx/OpenSSL read a CA bundle from.
CA_BUNDLE_ENV = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def certificates(path: str | Path) -> list[bytes]:
    """The PEM certificates in ``path`` (anything else in the file, such as a key, is left out)."""
    return _PEM_CERT.findall(Path(path).read_bytes())


def names_host(cert_pem: bytes, host: str) -> bool:
    """Whether the certificate is valid for ``host`` by its subjectAltName (what clients check):
    an IP address entry for an address, a DNS entry (``*.lab`` covering one label) for a name."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        return address in san.get_values_for_type(x509.IPAddress)
    host = host.lower().rstrip(".")
    for name in san.get_values_for_type(x509.DNSName):
        name = name.lower().rstrip(".")
        if name == host or (name.startswith("*.") and "." in host
                            and host.split(".", 1)[1] == name[2:]):
            return True
    return False


def public_https_problem(public_url: str, ssl_cert: str) -> str:
    """Why kernels could not verify MLflow at ``public_url`` with ``ssl_cert``; "" when they can.

    A wildcard bind address (``--ip 0.0.0.0``) is no name a certificate holds, nor one people
    open; a certificate not naming the public host would fail every kernel's MLflow call.
    """
    host = urlsplit(public_url).hostname or ""
    if host in ("0.0.0.0", "::", ""):
        return f"the public address {public_url} is a wildcard bind address, not a host name"
    leaf = certificates(ssl_cert)[:1]
    if not leaf:
        return f"{ssl_cert} holds no PEM certificate"
    if not names_host(leaf[0], host):
        return f"the certificate {ssl_cert} does not name {host} (its subjectAltName)"
    return ""


def write_ca_bundle(dest: Path, ssl_cert: str, ssl_ca: str = "") -> Path:
    """Write the CA bundle kernels and jobs trust: certifi's public CAs, then ``ssl_ca``'s and
    ``ssl_cert``'s certificates. Certificates only, world-readable (servers run as per-user
    accounts); rewritten at each start, so a renewed certificate is trusted at once."""
    import certifi

    parts = [Path(certifi.where()).read_bytes().rstrip() + b"\n"]
    for path in (ssl_ca, ssl_cert):
        if path:
            parts += [c + b"\n" for c in certificates(path)]
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.parent.chmod(0o755)
    tmp = dest.with_suffix(".tmp")
    tmp.write_bytes(b"".join(parts))
    tmp.chmod(0o644)
    os.replace(tmp, dest)
    return dest
