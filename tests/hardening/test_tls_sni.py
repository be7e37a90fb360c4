"""Random SNI names cannot make the edge write: certificates only for names it serves.

Against the real daemon: 120 handshakes with random names on a dedicated IP's TLS port
and on the shared IPv4 write nothing to STATE_DIR and are all answered (the default
certificate, or an ``unrecognized_name`` alert on the shared address); a 240+ character
name is handled. In-process: the cap on stored self-signed certificates holds and says so.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from edge.dataplane.tls import CertificateStore, server_ssl_context
from tests.integration.api import Api
from tests.integration.daemon import EdgeProcess, start_edge
from tests.integration.edgeconf import http_app, write_edge_config
from tests.integration.test_tcp_proxy import on_uvloop

HANDSHAKES = 120
LONG_NAME = ".".join(["a" * 60] * 4) + ".example"  # 252 characters: a valid DNS name


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EdgeProcess, int]]:
    tmp = tmp_path_factory.mktemp("tls-sni")
    app, _, tls_port = http_app("web", ["lhr"])
    process = start_edge(tmp, config=write_edge_config(tmp, [app]))
    yield process, tls_port
    process.kill()


def state_files(edge: EdgeProcess) -> set[str]:
    return {str(p.relative_to(edge.state_dir)) for p in edge.state_dir.rglob("*")}


def handshake(address: str, port: int, name: str | None) -> x509.Certificate:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((address, port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True) or b"")


def san_of(cert: x509.Certificate) -> set[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(name.value) for name in san}


def random_name() -> str:
    return f"{secrets.token_hex(6)}.{secrets.token_hex(3)}.example"


def dedicated_ip(edge: EdgeProcess) -> str:
    _, body = Api.admin(edge).get("/v1/apps/web/ip_assignments")
    return str(next(ip["ip"] for ip in body["ips"] if not ip["shared"]))


def test_random_sni_on_a_dedicated_ip_gets_the_default_certificate_and_writes_nothing(
    edge: tuple[EdgeProcess, int],
) -> None:
    process, port = edge
    address = dedicated_ip(process)
    default = san_of(handshake(address, port, None))
    assert default == {"web.edge.test", address}
    before = state_files(process)
    started = time.monotonic()
    for _ in range(HANDSHAKES):
        assert san_of(handshake(address, port, random_name())) == default
    assert time.monotonic() - started < 60
    assert san_of(handshake(address, port, "web.edge.test")) == default
    assert state_files(process) - before == set()


def test_a_long_sni_name_is_answered_without_a_traceback(edge: tuple[EdgeProcess, int]) -> None:
    process, port = edge
    address = dedicated_ip(process)
    assert len(LONG_NAME) >= 240
    before = state_files(process)
    assert san_of(handshake(address, port, LONG_NAME)) == {"web.edge.test", address}
    assert state_files(process) - before == set()
    log = process.log()
    assert "Traceback" not in log and "File name too long" not in log


def test_random_sni_on_the_shared_ipv4_is_refused_and_writes_nothing(
    edge: tuple[EdgeProcess, int],
) -> None:
    process, port = edge
    status, body = Api.admin(process).post("/v1/apps/web/ip_assignments", {"type": "shared_v4"})
    assert status == 201, body
    shared = body["ip"]
    assert "web.edge.test" in san_of(handshake(shared, port, "web.edge.test"))  # served
    before = state_files(process)
    for name in [*(random_name() for _ in range(HANDSHAKES)), LONG_NAME]:
        with pytest.raises(ssl.SSLError) as refused:
            handshake(shared, port, name)
        assert refused.value.reason == "TLSV1_UNRECOGNIZED_NAME"
    assert state_files(process) - before == set()
    assert "Traceback" not in process.log()


@on_uvloop
async def test_stored_self_signed_certificates_are_capped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Even where every name is served, at most ``max_generated`` certificates are kept."""
    store = CertificateStore(tmp_path, max_generated=3)
    context = server_ssl_context(store, ["127.0.0.1"], accept_name=lambda name: True)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    names = [f"n{i}.example" for i in range(6)]
    with caplog.at_level(logging.WARNING, logger="edge.tls"):
        sans = [await asyncio.to_thread(handshake, "127.0.0.1", port, n) for n in names]
    server.close()
    crts = sorted(p.name for p in (tmp_path / "tls").glob("*.crt"))
    assert len(crts) == 3  # the default certificate and the first two names
    assert [san_of(c) for c in sans[:2]] == [{"n0.example"}, {"n1.example"}]
    assert all(san_of(c) == {"127.0.0.1"} for c in sans[2:])  # past the cap: the default
    assert [r.getMessage() for r in caplog.records].count(
        "tls: certificate limit reached; new names get the default certificate"
    ) == 1  # one clear line, not one per handshake
