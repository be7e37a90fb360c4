"""TLS 1.0 and 1.1 clients get a ``protocol_version`` alert, not a bare EOF; the log says why.

HAProxy 2.6 with ``ssl-min-ver TLSv1.2`` answers the same ClientHello with the same alert.
And what the event loop reports (``Fatal error on transport`` and the like) reaches the
log with its traceback, in both log formats.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import socket
import ssl
import struct
import time
import warnings
from collections.abc import Iterator

import pytest

from edge.runtime.logs import HumanFormatter, JsonFormatter, log_loop_exception
from tests.integration.api import Api
from tests.integration.daemon import EdgeProcess, start_edge
from tests.integration.edgeconf import http_app, write_edge_config

PROTOCOL_VERSION_ALERT = bytes([2, 70])  # level fatal, description protocol_version


@pytest.fixture(scope="module")
def tls_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EdgeProcess, str, int]]:
    tmp = tmp_path_factory.mktemp("tls-versions")
    app, _, port = http_app("web", ["lhr"])
    edge = start_edge(tmp, config=write_edge_config(tmp, [app]))
    _, body = Api.admin(edge).get("/v1/apps/web/ip_assignments")
    yield edge, body["ips"][0]["ip"], port
    edge.kill()


def client_hello(version: int) -> bytes:
    """A minimal ClientHello offering only ``version`` (0x0301 TLS 1.0, 0x0302 TLS 1.1)."""
    suites = struct.pack("!HH", 2, 0x002F)  # TLS_RSA_WITH_AES_128_CBC_SHA
    body = struct.pack("!H", version) + os.urandom(32) + b"\x00" + suites + b"\x01\x00"
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return struct.pack("!BHH", 0x16, version, len(handshake)) + handshake


def first_record(address: str, port: int, data: bytes) -> bytes:
    """What the server sends back before it closes (bounded by a timeout)."""
    with socket.create_connection((address, port), timeout=5) as sock:
        sock.sendall(data)
        received = b""
        while len(received) < 7:
            chunk = sock.recv(64)
            if not chunk:
                break
            received += chunk
        return received


@pytest.mark.parametrize("version", [0x0301, 0x0302], ids=["tls1.0", "tls1.1"])
def test_an_old_client_hello_gets_a_protocol_version_alert(
    tls_port: tuple[EdgeProcess, str, int], version: int
) -> None:
    edge, address, port = tls_port
    record = first_record(address, port, client_hello(version))
    assert record[:1] == b"\x15", f"expected an alert record, got {record!r}"  # alert
    assert record[3:5] == b"\x00\x02" and record[5:7] == PROTOCOL_VERSION_ALERT
    deadline = time.monotonic() + 5
    while "reason=unsupported protocol" not in edge.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "tls handshake failed reason=unsupported protocol" in edge.log()
    assert "Traceback" not in edge.log()


def test_an_ssl_module_client_pinned_to_tls_1_0_sees_the_alert(
    tls_port: tuple[EdgeProcess, str, int],
) -> None:
    _, address, port = tls_port
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSVersion.TLSv1 is deprecated
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            context.set_ciphers("DEFAULT@SECLEVEL=0")
            context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1
        except (ssl.SSLError, ValueError):
            pytest.skip("this OpenSSL cannot make a TLS 1.0 client (the raw test covers it)")
    with (
        socket.create_connection((address, port), timeout=5) as raw,
        pytest.raises(ssl.SSLError) as refused,
    ):
        context.wrap_socket(raw, server_hostname="web.edge.test")
    assert refused.value.reason == "TLSV1_ALERT_PROTOCOL_VERSION", refused.value


def test_tls_1_2_still_works(tls_port: tuple[EdgeProcess, str, int]) -> None:
    _, address, port = tls_port
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with (
        socket.create_connection((address, port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="web.edge.test") as tls,
    ):
        assert tls.version() == "TLSv1.2"


def _loop_error_lines(formatter: logging.Formatter) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("edge")
    logger.addHandler(handler)
    try:
        try:
            raise RuntimeError("boom in data_received")
        except RuntimeError as exc:
            context = {"message": "Fatal error on transport", "exception": exc, "protocol": "P"}
            loop = asyncio.new_event_loop()
            try:
                log_loop_exception(loop, context)
            finally:
                loop.close()
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_a_loop_error_reaches_the_log_with_its_traceback() -> None:
    human = _loop_error_lines(HumanFormatter())
    assert "Fatal error on transport" in human and "error=RuntimeError: boom" in human
    assert "Traceback (most recent call last)" in human and "raise RuntimeError" in human
    entry = json.loads(_loop_error_lines(JsonFormatter()))
    assert entry["msg"] == "Fatal error on transport"
    assert "raise RuntimeError" in entry["traceback"]
