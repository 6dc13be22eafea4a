"""Certificate checks: only PEM X.509 certificates go into images, never a private key or /etc/shadow.

`build.ca_certificates` copies files into every image (what a TLS-intercepting proxy needs
trusted), so each file is read (small, regular files only) and each of its blocks parsed by OpenSSL.
"""

from __future__ import annotations

import glob
import re
import ssl
import stat
from pathlib import Path

DEFAULT_CA_CERTIFICATES = "/usr/local/share/ca-certificates/**/*.crt"  # what `ca_certificates: host` trusts
MAX_CERTIFICATE_BYTES = 1024 * 1024


def host_certificates() -> tuple[Path, ...]:
    """The host's locally added CAs, in DEFAULT_CA_CERTIFICATES."""
    return tuple(Path(p) for p in sorted(glob.glob(DEFAULT_CA_CERTIFICATES, recursive=True)))


_PEM_BEGIN = re.compile(r"-----BEGIN ([^-\r\n]*)-----")
_PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.DOTALL)


def certificate_problem(path: Path) -> str | None:
    """Why path is not a file of PEM certificates, or None when it is."""
    try:
        text = _read_small_file(path, MAX_CERTIFICATE_BYTES).decode("latin-1")  # PEM is ASCII; text around it may be anything
    except OSError as error:
        return f"cannot read it: {error.strerror}"
    labels = _PEM_BEGIN.findall(text)
    if not labels:
        return "no -----BEGIN CERTIFICATE----- block"
    if set(labels) != {"CERTIFICATE"}:
        return f"holds a {next(label for label in labels if label != 'CERTIFICATE')} block, and only certificates may go into images"
    blocks = _PEM_CERTIFICATE.findall(text)
    if len(blocks) != len(labels):
        return "a -----BEGIN CERTIFICATE----- block without its END line"
    return next(filter(None, map(_certificate_block_problem, blocks)), None)


def _certificate_block_problem(block: str) -> str | None:
    try:
        der = ssl.PEM_cert_to_DER_cert(block)
    except ValueError:
        return "a CERTIFICATE block whose body is not base64"
    try:
        # OpenSSL parses it: base64 that decodes is not enough, it must be an X.509 certificate.
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=der)
    except ssl.SSLError:
        return "a CERTIFICATE block that is not an X.509 certificate"
    return None


def _read_small_file(path: Path, limit: int) -> bytes:
    """At most limit bytes of a regular file, or OSError: never a pipe that blocks, never a huge file read whole."""
    if not stat.S_ISREG(path.stat().st_mode):
        raise OSError(0, "not a regular file")
    with open(path, "rb") as file:
        content = file.read(limit + 1)
    if len(content) > limit:
        raise OSError(0, f"over {limit} bytes")
    return content

