"""The relay's own answers through one helper: code in header and body, one report each."""

from __future__ import annotations

from edge.core.error_codes import ErrorCode
from edge.dataplane.simple_router import StaticRouter
from tests.integration._http_helpers import (
    LOCALHOST,
    Backend,
    free_port,
    get,
    on_uvloop,
    running_relay,
)


@on_uvloop
async def test_an_answer_names_its_code_and_is_reported_once_with_its_request_id() -> None:
    router = StaticRouter([])  # no machines at all
    async with running_relay(router) as relay:
        resp = await relay.request(get())
    assert resp.status == 503
    assert resp.get("Edge-Error-Code") == "PR01"
    assert b"error code: PR01 (no healthy machine for the app)" in resp.body
    [answer] = router.answers
    assert (answer.status, answer.code, answer.app) == (503, ErrorCode.PR01, "static")
    assert answer.request_id == resp.get("Fly-Request-Id")
    assert answer.reason.startswith("app 'static': no machine can take it")


@on_uvloop
async def test_a_refused_connect_after_a_retry_is_pr03_with_the_last_cause() -> None:
    router = StaticRouter([(LOCALHOST, free_port())], retries=2)
    async with running_relay(router) as relay:
        resp = await relay.request(get())
    assert (resp.status, resp.get("Edge-Error-Code")) == (503, "PR03")
    assert b"the last connect failed: refused (PC01)" in resp.body
    assert [a.code for a in router.answers] == [ErrorCode.PR03]


@on_uvloop
async def test_answers_without_a_code_and_redirects() -> None:
    backend = await Backend().start()
    router = StaticRouter([(LOCALHOST, backend.port)], force_https=True)
    async with running_relay(router) as relay:
        redirect = await relay.request(get())
        bad = await relay.request(b"GET / HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n")
    await backend.stop()
    assert redirect.status == 301 and redirect.get("Edge-Error-Code") is None
    assert bad.status == 400 and bad.get("Edge-Error-Code") is None
    assert b"error code" not in bad.body
    # The redirect is not an error: only the 400 is reported, without a code.
    assert [(a.status, a.code) for a in router.answers] == [(400, None)]
