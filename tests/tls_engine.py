"""A "remote" Docker engine behind TLS on a loopback address: this machine's engine, reached through a real TLS handshake.

A CA, a server certificate for the address and a client certificate are made with the
`cryptography` package (paramiko's dependency, so already installed). The forwarder
terminates TLS, requires a client certificate signed by that CA, as `dockerd --tlsverify`
does, and passes the bytes on to the engine's socket. The only stand-in is where the engine is.

    <folder>/client/     ca.pem cert.pem key.pem: what DOCKER_CERT_PATH holds for the docker CLI
    <folder>/ca-only/    ca.pem: a client that checks the engine but has no certificate of its own
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ADDRESS = "127.0.0.5"  # beside the sshd hosts' 127.0.0.2 and .3, and the unreachable .4
ENGINE_SOCKET = "/var/run/docker.sock"


class TlsEngine:
    def __init__(self, folder: Path, address: str = ADDRESS, engine_socket: str = ENGINE_SOCKET):
        self.folder = folder
        self.address = address
        self.engine_socket = engine_socket
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="tls engine", daemon=True)
        self.server: asyncio.AbstractServer | None = None
        self.connections: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"tcp://{self.address}:{self.port}"

    @property
    def client_certs(self) -> Path:
        return self.folder / "client"

    @property
    def ca_only(self) -> Path:
        return self.folder / "ca-only"

    def start(self) -> None:
        make_certificates(self.folder, self.address)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.folder / "server" / "cert.pem", self.folder / "server" / "key.pem")
        context.load_verify_locations(self.folder / "ca.pem")
        context.verify_mode = ssl.CERT_REQUIRED  # as dockerd --tlsverify
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._forward, self.address, 0, ssl=context), self.loop).result(timeout=30)
        self.port = self.server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def close():
            self.server.close()
            for writer in list(self.connections):
                writer.close()
            await self.server.wait_closed()
            forwarding = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in forwarding:
                task.cancel()
            await asyncio.gather(*forwarding, return_exceptions=True)

        if self.server is not None:
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()

    async def _forward(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            engine_reader, engine_writer = await asyncio.open_unix_connection(self.engine_socket)
        except OSError:
            client_writer.close()
            return
        self.connections.update((client_writer, engine_writer))
        try:
            await asyncio.gather(pump(client_reader, engine_writer), pump(engine_reader, client_writer))
        except asyncio.CancelledError:
            pass  # stop(): ended quietly (streams' callback would report a cancelled task as an error)
        finally:
            self.connections.difference_update((client_writer, engine_writer))


async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Bytes one way until either side ends; then both ends close (HTTP needs no half-close here)."""
    try:
        while data := await source.read(1 << 16):
            sink.write(data)
            await sink.drain()
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        sink.close()


def make_certificates(folder: Path, address: str) -> None:
    """A CA; a server certificate for the address; a client certificate; each folder as the docker CLI reads one."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cudnn-matrix test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    write(folder / "ca.pem", ca.public_bytes(serialization.Encoding.PEM))

    def issue(name: str, usage, alternative_names: list[x509.GeneralName]) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
        if alternative_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        certificate = builder.sign(ca_key, hashes.SHA256())
        (folder / name).mkdir(exist_ok=True)
        write(folder / name / "cert.pem", certificate.public_bytes(serialization.Encoding.PEM))
        write(folder / name / "key.pem", key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
        write(folder / name / "ca.pem", (folder / "ca.pem").read_bytes())

    issue("server", ExtendedKeyUsageOID.SERVER_AUTH, [x509.IPAddress(ipaddress.ip_address(address))])
    issue("client", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    (folder / "ca-only").mkdir(exist_ok=True)
    write(folder / "ca-only" / "ca.pem", (folder / "ca.pem").read_bytes())


def write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    if path.name == "key.pem":
        path.chmod(0o600)
