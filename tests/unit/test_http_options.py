"""http_options of a port (response headers, pristine, idle_timeout, replay_cache) and
http.replay_buffer: validation with YAML paths, and the relay's PortPolicy."""

from __future__ import annotations

from typing import Any

import pytest

from edge.config.load import parse_config
from edge.config.model import HttpSpec
from edge.config.regions import default_catalogue
from edge.core.replay import ReplayTransform
from edge.dataplane.contract import PortPolicy
from edge.dataplane.http_heads_extra import (
    apply_policy,
    cookie_value,
    dechunk,
    edit_request,
    header_value,
    host_name,
    replay_signal,
    request_path,
    session_reader,
)
from edge.errors import ConfigError
from edge.runtime.replay_routing import port_policy

REGIONS = default_catalogue()


def config(http_options: dict[str, Any], handlers: tuple[str, ...] = ("http",), **edge: Any) -> Any:
    port = {"port": 8080, "handlers": list(handlers), "http_options": http_options}
    app = {"app": "web", "primary_region": "lhr", "services": [{"ports": [port]}]}
    return parse_config(
        {"edge": {"pops": ["lhr"], "local_region": "lhr"}, "apps": [app], **edge}, REGIONS
    )


def problems(http_options: dict[str, Any], **kwargs: Any) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        config(http_options, **kwargs)
    return info.value.problems


PATH = "apps[0].services[0].ports[0].http_options"


def test_a_full_http_options_block() -> None:
    options = {
        "response": {"headers": {"X-A": "1", "X-B": ["2", "3"], "Server": False}, "pristine": True},
        "idle_timeout": 600,
        "replay_cache": [
            {"path_prefix": "/s/", "ttl_seconds": 60, "type": "cookie", "name": "sid"}
        ],
    }
    port = config(options).apps[0].services[0].ports[0]
    policy = port_policy(port, HttpSpec())
    assert policy.set_lines == b"X-A: 1\r\nX-B: 2\r\nX-B: 3\r\n"
    assert policy.remove == frozenset({b"x-a", b"x-b", b"server"})
    assert policy.pristine and policy.idle_timeout == 600.0
    assert policy.replay_buffer == 1024 * 1024
    assert [c.name for c in policy.replay_caches] == ["sid"]


@pytest.mark.parametrize(
    ("options", "where", "message"),
    [
        ({"response": {"headers": {"Bad Name": "x"}}}, ".response", "not a valid header name"),
        ({"response": {"headers": {"Content-Length": "1"}}}, ".response", "frames the response"),
        ({"response": {"headers": {"X-A": "a\r\nb"}}}, ".response", "list of strings"),
        ({"response": {"headers": {"X-A": True}}}, ".response.headers.X-A", ""),
        ({"response": {"pristine": "maybe"}}, ".response.pristine", ""),
        ({"idle_timeout": 0}, ".idle_timeout", "greater than 0"),
        ({"replay_cache": [{"path_prefix": "s", "ttl_seconds": 60, "type": "cookie", "name": "a"}]},
         ".replay_cache[0].path_prefix", ""),
        ({"replay_cache": [{"path_prefix": "/s", "ttl_seconds": 5, "type": "cookie", "name": "a"}]},
         ".replay_cache[0].ttl_seconds", "10"),
        ({"replay_cache": [{"path_prefix": "/s", "ttl_seconds": 60, "type": "query", "name": "a"}]},
         ".replay_cache[0].type", ""),
        ({"compress": True}, ".compress", "unknown key"),
    ],
)  # fmt: skip
def test_invalid_http_options_name_their_path(
    options: dict[str, Any], where: str, message: str
) -> None:
    found = problems(options)
    assert any(p.startswith(PATH + where) and message in p for p in found), found


def test_http_options_need_the_http_handler() -> None:
    found = problems({"idle_timeout": 5}, handlers=())
    assert f"{PATH[:-13]}: http_options needs the http handler on this port" in found


def test_replay_buffer_limits() -> None:
    found = problems({}, http={"replay_buffer": 11 * 1024 * 1024})
    assert any(p.startswith("http.replay_buffer") for p in found)
    assert config({}, http={"replay_buffer": 0}).http.replay_buffer == 0


HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Served-By: m1\r\n"
    b"Fly-Request-Id: 01ABC-lhr\r\nVia: 1.1 edge\r\n\r\n"
)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (PortPolicy(), HEAD),
        (
            PortPolicy(pristine=True),
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Served-By: m1\r\n\r\n",
        ),
        (
            PortPolicy(set_lines=b"X-Served-By: edge\r\n", remove=frozenset({b"x-served-by"})),
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nFly-Request-Id: 01ABC-lhr\r\n"
            b"Via: 1.1 edge\r\nX-Served-By: edge\r\n\r\n",
        ),
    ],
)
def test_apply_policy(policy: PortPolicy, expected: bytes) -> None:
    assert apply_policy(HEAD, policy) == expected


REQUEST = b"POST /a/b?x=1 HTTP/1.1\r\nHost: h\r\nCookie: a=1; sid=xyz\r\nX-Secret: s\r\n\r\n"


def test_edit_request() -> None:
    assert edit_request(REQUEST, None, b"A: 1\r\n") == REQUEST[:-2] + b"A: 1\r\n\r\n"
    transform = ReplayTransform("/new", ("x-secret",), (("Host", "other"), ("X-N", "v")))
    assert edit_request(REQUEST, transform, b"A: 1\r\n") == (
        b"POST /new HTTP/1.1\r\nCookie: a=1; sid=xyz\r\nHost: other\r\nX-N: v\r\nA: 1\r\n\r\n"
    )


def test_host_names_and_sessions() -> None:
    assert host_name(b"Shop.Example:8080") == "shop.example"
    assert host_name(b"[::1]:8080") == "[::1]" and host_name(None) == ""
    read = session_reader(REQUEST)
    assert read("cookie", "sid") == "xyz" and read("header", "X-Secret") == "s"
    assert read("header", "x-none") is None


def test_request_helpers() -> None:
    assert request_path(REQUEST) == "/a/b"
    assert cookie_value(REQUEST, "sid") == "xyz"
    assert cookie_value(REQUEST, "none") is None
    assert header_value(REQUEST, b"x-secret") == b"s"
    assert header_value(REQUEST, b"x-other") is None


@pytest.mark.parametrize(
    ("head", "header", "json"),
    [
        (b"HTTP/1.1 200 OK\r\nfly-replay: region=lhr\r\n\r\n", b"region=lhr", False),
        (b"HTTP/1.1 200 OK\r\nFLY-REPLAY:  app=x \r\n\r\n", b"app=x", False),
        (b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.fly.replay+json; charset=utf-8\r\n\r\n",
         None, True),
    ],
)  # fmt: skip
def test_replay_signal(head: bytes, header: bytes | None, json: bool) -> None:
    signal = replay_signal(head)
    assert signal is not None and (signal.header, signal.json) == (header, json)


def test_not_a_replay_signal() -> None:
    assert replay_signal(b"HTTP/1.1 200 OK\r\nX-Replayed: yes\r\n\r\n") is None
    assert replay_signal(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n") is None


def test_dechunk() -> None:
    assert dechunk(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n") == b"abcde"
    for cut in (b"3\r\nab", b"3\r\nabc\r\n", b"zz\r\n"):
        with pytest.raises(ValueError):
            dechunk(cut)
