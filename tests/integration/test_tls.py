"""TLS termination with real ssl-module clients on 127.0.0.1, through the raw TCP relay."""

from __future__ import annotations

import asyncio
import socket
import ssl
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from edge.dataplane.tcp_proxy import make_tcp_protocol_factory
from edge.dataplane.tls import (
    CertificateStore,
    CertPair,
    generate_self_signed,
    server_ssl_context,
)
from edge.dataplane.tracker import ConnectionTracker
from tests.integration.test_tcp_proxy import Echo, FakeRouter, on_uvloop, port_of, serve, until


def handshake(
    port: int,
    server_hostname: str | None,
    cafile: Path | None = None,
    alpn: list[str] | None = None,
) -> dict[str, Any]:
    """Connect with the ssl module, send one line through the relay, read its echo."""
    context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    if cafile is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(alpn or ["h2", "http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        tls.sendall(b"ping\n")
        echoed = tls.recv(16)
        cert = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True) or b"")
        return {"alpn": tls.selected_alpn_protocol(), "echo": echoed, "cert": cert}


def san_of(cert: x509.Certificate) -> list[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(name.value) for name in san]


async def tls_relay(
    store: CertificateStore, accept: Any = None
) -> tuple[Any, Any, FakeRouter, ConnectionTracker]:
    backend = await serve(Echo)
    router = FakeRouter([("127.0.0.1", port_of(backend), "m1")])
    tracker = ConnectionTracker()
    context = server_ssl_context(store, ["127.0.0.1", "edge.test"], accept)
    loop = asyncio.get_running_loop()
    factory = make_tcp_protocol_factory(router, loop, tracker)
    server = await loop.create_server(factory, "127.0.0.1", 0, ssl=context)
    return server, backend, router, tracker


@on_uvloop
async def test_sni_handshake_certificate_alpn_and_client_info(tmp_path: Path) -> None:
    store = CertificateStore(tmp_path)
    # A name the listener serves (accepted) gets its own certificate.
    server, backend, router, tracker = await tls_relay(store, lambda n: n == "app.example.com")
    cafile = store.pair_for(["app.example.com"]).cert
    got = await asyncio.to_thread(handshake, port_of(server), "app.example.com", cafile)
    assert got["echo"] == b"ping\n"
    assert got["alpn"] == "http/1.1"
    assert san_of(got["cert"]) == ["app.example.com"]
    (client,) = router.clients
    assert client.tls and client.sni == "app.example.com"
    await until(lambda: len(tracker) == 0)
    server.close()
    backend.close()


@on_uvloop
async def test_no_sni_gets_default_certificate_with_ip_san(tmp_path: Path) -> None:
    store = CertificateStore(tmp_path)
    server, backend, router, _ = await tls_relay(store)
    cafile = store.pair_for(["127.0.0.1", "edge.test"]).cert
    # An IP address as server_hostname sends no SNI; verification checks the IP SAN.
    got = await asyncio.to_thread(handshake, port_of(server), "127.0.0.1", cafile)
    assert set(san_of(got["cert"])) == {"127.0.0.1", "edge.test"}
    assert router.clients[0].sni is None and router.clients[0].tls
    server.close()
    backend.close()


@on_uvloop
async def test_refused_name_gets_unrecognized_name_alert(tmp_path: Path) -> None:
    store = CertificateStore(tmp_path)
    server, backend, router, _ = await tls_relay(store, accept=lambda name: name == "ok.test")
    with pytest.raises(ssl.SSLError) as refused:
        await asyncio.to_thread(handshake, port_of(server), "nobody.test")
    assert refused.value.reason == "TLSV1_UNRECOGNIZED_NAME"
    got = await asyncio.to_thread(handshake, port_of(server), "ok.test")
    assert got["echo"] == b"ping\n"
    assert [c.sni for c in router.clients] == ["ok.test"]  # the refused one never got here
    assert not (store.directory / "nobody.test.crt").exists()
    server.close()
    backend.close()


def test_context_requires_tls_1_2(tmp_path: Path) -> None:
    context = server_ssl_context(CertificateStore(tmp_path), ["127.0.0.1"])
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


@on_uvloop
async def test_configured_wildcard_certificate_wins(tmp_path: Path) -> None:
    cert_pem, key_pem = generate_self_signed(["*.example.org"])
    pair = CertPair(tmp_path / "wild.crt", tmp_path / "wild.key")
    pair.cert.write_bytes(cert_pem)
    pair.key.write_bytes(key_pem)
    store = CertificateStore(tmp_path / "state", {"*.example.org": pair})
    server, backend, _, _ = await tls_relay(store)
    got = await asyncio.to_thread(handshake, port_of(server), "shop.example.org", pair.cert)
    assert san_of(got["cert"]) == ["*.example.org"]
    assert not (store.directory / "shop.example.org.crt").exists()
    server.close()
    backend.close()


def test_files_are_private_persisted_and_reused(tmp_path: Path) -> None:
    first = CertificateStore(tmp_path).pair_for(["api.example.net", "192.0.2.7"])
    directory = tmp_path / "tls"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for path in (first.cert, first.key):
        assert path.parent == directory
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(first.cert.read_bytes())
    assert set(san_of(cert)) == {"api.example.net", "192.0.2.7"}
    assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
    assert 364 <= days <= 366
    before = first.cert.read_bytes()
    again = CertificateStore(tmp_path).pair_for(["api.example.net", "192.0.2.7"])
    assert again == first and again.cert.read_bytes() == before  # reused, not regenerated
    first.cert.write_text("garbage")
    CertificateStore(tmp_path).pair_for(["api.example.net", "192.0.2.7"])
    assert first.cert.read_bytes() not in (before, b"garbage")  # unusable: made anew
    remade = first.cert.read_bytes()
    first.key.write_bytes(generate_self_signed(["other.example"])[1])  # a key of another
    CertificateStore(tmp_path).pair_for(["api.example.net", "192.0.2.7"])
    assert first.cert.read_bytes() != remade  # a mismatched pair is made anew too


def test_invalid_names_are_rejected(tmp_path: Path) -> None:
    store = CertificateStore(tmp_path)
    with pytest.raises(ValueError):
        store.pair_for(["bad name!", "-"])
    with pytest.raises(ValueError):
        store.add("not a name", CertPair(tmp_path / "a", tmp_path / "b"))
