"""Modal's real API is gRPC over TLS with HTTP/2 chosen by ALPN: the connector must speak it to a server it
trusts, and refuse one it does not, in one line that shows no token."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipectl.connectors import modal as modal_connector
from pipectl.errors import Unreachable
from pipectl.sandbox.modal_fake import FakeModal, write_state
from pipectl.sandbox.procs import free_port

TOKEN_ID, TOKEN_SECRET = "ak-" + "tls-test-id-0001", "as-" + "tls-test-secret-0001"  # built, not literal


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1, signed by its own key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def tls_fake(tmp_path) -> Iterator[tuple[str, Path]]:
    """The sandbox's Modal fake behind TLS that offers only HTTP/2, as api.modal.com does."""
    from grpclib.server import Server

    cert, key = _self_signed(tmp_path)
    state = tmp_path / "state.json"
    write_state(state, {"tokens": {TOKEN_ID: TOKEN_SECRET}, "workspace": "tls-workspace", "apps": {}})
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["h2"])
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="tls-modal-fake", daemon=True)
    thread.start()

    async def start() -> Server:  # made inside the loop that serves it
        server = Server([FakeModal(state)])
        await server.start("127.0.0.1", port, ssl=context)
        return server

    port = free_port()
    server = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield f"https://127.0.0.1:{port}", cert
    finally:
        async def stop() -> None:
            server.close()
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_a_trusted_tls_server_is_spoken_to_over_http2(tls_fake, monkeypatch):
    url, cert = tls_fake
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trusted the way every pipectl client trusts a CA
    workspace = asyncio.run(modal_connector.verify_token(TOKEN_ID, TOKEN_SECRET, server_url=url, timeout=10))
    assert workspace == "tls-workspace"


def test_an_untrusted_certificate_is_unreachable_in_one_line_without_the_token(tls_fake, monkeypatch):
    url, _ = tls_fake
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with pytest.raises(Unreachable) as caught:
        asyncio.run(modal_connector.verify_token(TOKEN_ID, TOKEN_SECRET, server_url=url, timeout=10))
    message = str(caught.value)
    assert "\n" not in message and "127.0.0.1" in message
    assert TOKEN_ID not in message and TOKEN_SECRET not in message
