"""The live dashboard (``/ui``) in a real browser: Debian's headless Chromium, driven by
Playwright's Python package (never ``playwright install``: no browser download).

The real daemon runs the demo configuration (``config/edge.yaml``) with its own address
pool and free ports, so it does not clash with a demo already running. With
``EDGE_SAVE_SCREENSHOT=1`` the screenshot is also copied to ``docs/dashboard.png``.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from tests.conftest import require_tool
from tests.integration.api import Api, edgectl
from tests.integration.daemon import ROOT, EdgeProcess, free_port, start_edge
from tests.integration.edgeconf import unique_pool

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
LAPTOP = {"width": 1366, "height": 768}
CLIENT_REGIONS = ("lhr", "iad", "syd", "nrt", "gru", "sin", "ams")
GREY, RED = "rgb(110, 118, 129)", "rgb(248, 81, 73)"  # --stopped and --critical in style.css
T = TypeVar("T")


def playwright_api() -> Any:
    """``playwright.sync_api``; skip without it, except under CI where it is a failure."""
    try:
        from playwright import sync_api
    except ImportError:
        message = "the playwright package is not installed (pip install playwright)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI: {message}")
        pytest.skip(message)
    return sync_api


def demo_config(folder: Path) -> Path:
    """config/edge.yaml with its own address pools and free ports for every app port."""
    config = yaml.safe_load((ROOT / "config" / "edge.yaml").read_text())
    pool, shared = unique_pool()
    second = pool.split(".")[1]
    config["ipam"]["pools"] = {
        "v4": [pool],
        "v6": [f"fd77:{int(second):x}::/64"],
        "private_v6": [f"fdaa:{int(second):x}::/64"],
    }
    config["ipam"]["shared_v4"] = shared
    for app in config["apps"]:
        for service in app["services"]:
            for port in service["ports"]:
                port["port"] = free_port()
    path = folder / "edge.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class Demo:
    """The daemon on the demo configuration, and what the tests need to know about it."""

    def __init__(self, folder: Path) -> None:
        self.config_path = demo_config(folder)
        self.config = yaml.safe_load(self.config_path.read_text())
        self.edge: EdgeProcess = start_edge(folder, config=self.config_path)
        self.api = Api.admin(self.edge)
        self.token = self.edge.token()

    def machine_ids(self) -> set[str]:
        return {m["id"] for app in self.config["apps"] for m in app["machines"]}

    def http_target(self, app: str = "hello") -> tuple[str, int]:
        status, body = self.api.get(f"/v1/apps/{app}/ip_assignments")
        assert status == 200, body
        spec = next(a for a in self.config["apps"] if a["app"] == app)
        port = next(
            p["port"] for s in spec["services"] for p in s["ports"] if p["handlers"] == ["http"]
        )
        return body["ips"][0]["ip"], int(port)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    require_tool("chromium")
    demo = Demo(tmp_path_factory.mktemp("edge"))
    try:
        yield demo
    finally:
        try:
            demo.edge.terminate(timeout=20)
        except Exception:
            demo.edge.kill()


@pytest.fixture(scope="module")
def browser(demo: Demo) -> Iterator[Any]:
    sync_api = playwright_api()
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Page:
    """A fresh browser context (empty session storage) that records what the page did."""

    def __init__(self, browser: Any, demo: Demo) -> None:
        self.context = browser.new_context(viewport=LAPTOP)
        self.page = self.context.new_page()
        self.demo = demo
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def open(self, path: str = "/ui") -> Any:
        self.page.goto(self.demo.edge.url + path)
        return self.page

    def sign_in(self, token: str) -> None:
        self.page.fill("#token", token)
        self.page.click("#login button[type=submit]")

    def close(self) -> None:
        self.context.close()

    def check_stayed_home(self) -> None:
        """Nothing came from anywhere but this edge, and no script failed."""
        strangers = [url for url in self.requests if not url.startswith(self.demo.edge.url + "/")]
        assert strangers == []
        assert self.errors == []


@pytest.fixture
def page(browser: Any, demo: Demo) -> Iterator[Page]:
    page = Page(browser, demo)
    try:
        yield page
    finally:
        page.close()


def until(read: Callable[[], T], done: Callable[[T], bool], timeout: float = 3.0) -> T:
    """Read until ``done`` says so or the time is up; the last value either way."""
    deadline = time.monotonic() + timeout
    value = read()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(0.05)
        value = read()
    return value


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


class Traffic:
    """Requests to one address from several client regions, in threads, until stopped.

    One thread sends quick requests (weighted by region); ``slow`` more keep requests of
    ``/delay/1200`` in flight from lhr and syd, so machines show some load.
    """

    def __init__(self, address: str, port: int, slow: int = 4) -> None:
        self.address, self.port = address, port
        self.answers: list[int] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._quick, name="traffic", daemon=True)]
        for i in range(slow):
            region = ("lhr", "syd")[i % 2]
            self._threads.append(
                threading.Thread(target=self._slow, args=(region,), name="slow", daemon=True)
            )

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _get(self, path: str, region: str) -> None:
        conn = http.client.HTTPConnection(self.address, self.port, timeout=5)
        try:
            conn.request("GET", path, headers={"Edge-Client-Region": region})
            response = conn.getresponse()
            response.read()
            self.answers.append(response.status)
        except OSError:
            self.answers.append(0)
        finally:
            conn.close()

    def _quick(self) -> None:
        rng = random.Random(6)
        weights = [6, 4, 3, 2, 1.5, 1, 1.5]
        while not self._stop.is_set():
            self._get("/dashboard", rng.choices(CLIENT_REGIONS, weights)[0])
            self._stop.wait(0.04)

    def _slow(self, region: str) -> None:
        while not self._stop.is_set():
            self._get("/delay/1200", region)


def test_assets_come_from_the_package_with_their_types(demo: Demo) -> None:
    base = demo.edge.url
    for path in ("/ui", "/ui/", "/ui/index.html"):
        status, headers, body = fetch(base + path)
        assert status == 200, path
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert b'<script type="module" src="/ui/app.js">' in body
        assert "default-src 'none'" in headers["Content-Security-Policy"]
    types = {
        "/ui/app.js": "text/javascript; charset=utf-8",
        "/ui/map.js": "text/javascript; charset=utf-8",
        "/ui/style.css": "text/css; charset=utf-8",
        "/ui/world.json": "application/json; charset=utf-8",
        "/ui/favicon.svg": "image/svg+xml; charset=utf-8",
    }
    for path, content_type in types.items():
        status, headers, _ = fetch(base + path)
        assert (status, headers["Content-Type"]) == (200, content_type), path
    for path in ("/ui/nope.js", "/ui/..%2Fapp.py", "/ui/%2e%2e", "/ui/index.html/x"):
        status, _, _ = fetch(base + path)
        assert status == 404, path
    # The page is public; the data it shows is not.
    assert fetch(base + "/v1/status")[0] == 401


def test_a_refused_token_shows_the_form_again(page: Page, demo: Demo) -> None:
    tab = page.open()
    assert tab.is_visible("#login")
    page.sign_in("not-the-token")
    tab.wait_for_selector("#login-error:not([hidden])")
    assert "401" in tab.inner_text("#login-error")
    assert tab.evaluate("sessionStorage.length") == 0

    page.sign_in(demo.token)
    tab.wait_for_selector("#login", state="hidden")
    tab.wait_for_selector("[data-machine-id]")
    assert tab.evaluate("Object.values(sessionStorage)") == [demo.token]

    tab.reload()  # the token is kept for the tab's session: no form again
    tab.wait_for_selector("[data-machine-id]")
    assert not tab.is_visible("#login")

    tab.click("#signout")
    tab.wait_for_selector("#login", state="visible")
    assert tab.evaluate("sessionStorage.length") == 0
    page.check_stayed_home()


def test_the_edgectl_ui_link_signs_in_in_one_step(page: Page, browser: Any, demo: Demo) -> None:
    result = edgectl(demo.edge, "ui")
    assert result.returncode == 0, result.stderr
    link = result.stdout.strip()
    path = link.removeprefix(demo.edge.url)
    assert path.startswith("/ui#code=")
    tab = page.open(path)
    tab.wait_for_selector("[data-machine-id]")  # no form: signed in by the link
    assert not tab.is_visible("#login")
    assert tab.evaluate("location.hash") == ""  # the code left the address bar at once
    token = tab.evaluate("Object.values(sessionStorage)")[0]
    assert token.startswith("edge_ui_") and token != demo.token  # a session, not the admin's
    page.check_stayed_home()

    again = Page(browser, demo)  # the same link in a new tab: it was used up
    try:
        second = again.open(path)
        second.wait_for_selector("#login-error:not([hidden])")
        assert "used up or expired" in second.inner_text("#login-error")
        assert "edgectl ui" in second.inner_text("#login")
        hint = second.inner_text("#token-path")
        assert hint == str(demo.edge.state_dir / "token")  # the real path, not STATE_DIR
    finally:
        again.close()


def test_an_org_token_sees_nothing_of_other_orgs(page: Page, demo: Demo) -> None:
    slug = f"other{random.randint(1000, 9999)}"
    status, body = demo.api.post("/v1/orgs", {"slug": slug})
    assert status == 201, body
    tab = page.open()
    page.sign_in(body["token"])
    tab.wait_for_selector("#login", state="hidden")
    tab.wait_for_selector("#apps .empty")
    assert tab.inner_text("#apps").strip() == "no apps yet"
    assert tab.locator("[data-machine-id]").count() == 0
    assert tab.locator("[data-pop]").count() == len(demo.config["edge"]["pops"])
    page.check_stayed_home()


def test_map_shows_machines_traffic_and_a_stopped_machine(
    page: Page, demo: Demo, tmp_path: Path
) -> None:
    tab = page.open()
    page.sign_in(demo.token)
    tab.wait_for_selector("[data-machine-id]")

    # One dot per machine of the demo, all placed, and every PoP announcing.
    shown = tab.eval_on_selector_all(
        "[data-machine-id]", "nodes => nodes.map(n => n.dataset.machineId)"
    )
    assert sorted(shown) == sorted(demo.machine_ids())
    assert tab.locator('[data-pop][data-up="true"]').count() == len(demo.config["edge"]["pops"])
    # (Selectors, not wait_for_function: the page's CSP forbids the eval that needs.)
    not_passing = '[data-machine-id]:not([data-health="passing"])'
    tab.wait_for_selector(not_passing, state="detached", timeout=15_000)
    assert tab.locator("[data-machine-row]").count() == len(demo.machine_ids())
    # Recent health-check results (GET /v1/apps/{app}/checks) show as ticks per machine.
    tab.wait_for_selector('[data-machine-row="hello-iad-1"] .check.ok', timeout=10_000)
    assert tab.is_visible("#map-note")  # "no traffic yet"
    assert "no traffic yet" in tab.inner_text("#decisions")

    address, port = demo.http_target()
    with Traffic(address, port) as traffic:
        # Flows appear on the map (client region -> PoP -> machine region) and in the panels.
        tab.wait_for_selector('[data-flow^="hello|syd|syd|syd"]', timeout=10_000)
        tab.wait_for_selector('[data-flow^="hello|lhr|lhr|lhr"]', timeout=10_000)
        tab.wait_for_selector("#map-note", state="hidden")
        assert tab.locator("#decisions .decision").count() > 0
        assert "/s" in tab.inner_text("#summary")
        # Requests in flight show as load next to the limits.
        loads = until(
            lambda: tab.eval_on_selector_all(
                "[data-machine-row] .load .num b", "nodes => nodes.map(n => Number(n.textContent))"
            ),
            any,
            timeout=5,
        )
        assert any(loads)

        # Stop a machine through the API: its dot turns grey (stopped) or red within seconds.
        stopped_at = time.monotonic()
        status, body = demo.api.post("/v1/apps/hello/machines/hello-lhr-1/stop")
        assert status == 200, body
        dot = '[data-machine-id="hello-lhr-1"]'
        tab.wait_for_selector(
            f'{dot}[data-health="stopped"], {dot}[data-health="critical"]', timeout=5_000
        )
        assert time.monotonic() - stopped_at < 5
        # The colour itself, once its CSS transition is over: grey or red, not green.
        fill = until(
            lambda: tab.eval_on_selector(f"{dot} .dot", "n => getComputedStyle(n).fill"),
            lambda colour: colour in (GREY, RED),
        )
        assert fill in (GREY, RED)
        row = tab.locator('[data-machine-row="hello-lhr-1"]')
        assert row.get_attribute("data-health") in ("stopped", "critical")
        others = tab.eval_on_selector_all(
            f"[data-machine-id]:not({dot})", "nodes => nodes.map(n => n.dataset.health)"
        )
        assert set(others) == {"passing"}

        time.sleep(1.5)  # let the flows settle on the surviving machines for the picture
        shot = tmp_path / "dashboard.png"
        tab.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    assert traffic.answers.count(200) > 20
    if os.environ.get("EDGE_SAVE_SCREENSHOT") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "dashboard.png")
    page.check_stayed_home()


def test_faults_show_on_the_map_and_in_their_panel(page: Page, demo: Demo) -> None:
    status, document = demo.api.get("/v1/openapi.json")
    assert status == 200
    if "/v1/faults" not in document["paths"]:
        pytest.skip("this edge has no fault API yet")
    tab = page.open()
    page.sign_in(demo.token)
    tab.wait_for_selector("[data-machine-id]")
    tab.wait_for_selector('#faults[data-count="0"]')
    assert tab.inner_text("#faults").strip() == "none"
    try:
        status, body = demo.api.post("/v1/faults", {"kind": "withdraw", "pop": "gru"})
        assert status == 201, body
        status, body = demo.api.post(
            "/v1/faults",
            {"kind": "latency", "machine": "hello-iad-1", "app": "hello", "latency": "150ms"},
        )
        assert status == 201, body
        tab.wait_for_selector('[data-pop="gru"][data-up="false"]', timeout=5_000)
        tab.wait_for_selector('[data-machine-id="hello-iad-1"][data-fault="latency"]')
        assert tab.locator("#faults [data-fault]").count() == 2
        listed = tab.inner_text("#faults")
        assert "pop gru" in listed
        assert "machine hello-iad-1" in listed
        assert "+150 ms" in listed
        assert "withdrawn: gru" in tab.inner_text("#summary")
    finally:
        demo.api.delete("/v1/faults")
    tab.wait_for_selector('[data-pop="gru"][data-up="true"]', timeout=5_000)
    tab.wait_for_selector("#faults [data-fault]", state="detached", timeout=5_000)
    page.check_stayed_home()


def test_a_machine_without_checks_shows_no_checks(page: Page, demo: Demo) -> None:
    app = {
        "app": "plain",
        "primary_region": "lhr",
        "services": [
            {"internal_port": 8080, "ports": [{"port": free_port(), "handlers": ["http"]}]}
        ],
        "machines": [{"id": "plain-1", "region": "lhr", "demo": True}],
    }
    status, body = demo.api.call("PUT", "/v1/apps/plain", app)
    assert status == 201, body
    try:
        tab = page.open()
        page.sign_in(demo.token)
        tab.wait_for_selector('[data-machine-id="plain-1"][data-health="no-checks"]')
        row = tab.locator('[data-machine-row="plain-1"]')
        assert row.get_attribute("data-health") == "no-checks"
        assert "no checks" in row.inner_text()
        assert "passing" not in row.inner_text()
        page.check_stayed_home()
    finally:
        demo.api.delete("/v1/apps/plain")


def test_replays_show_as_arcs_on_the_map(page: Page, demo: Demo) -> None:
    """The demo app forwards writes to its primary region (lhr): from Sydney they replay."""
    address, port = demo.http_target()
    for _ in range(3):
        conn = http.client.HTTPConnection(address, port, timeout=5)
        try:
            conn.request("POST", "/write/order", body=b"{}", headers={"Edge-Client-Region": "syd"})
            response = conn.getresponse()
            body = json.loads(response.read())
        finally:
            conn.close()
        assert response.status == 200 and body["region"] == "lhr", body
    tab = page.open()
    page.sign_in(demo.token)
    tab.wait_for_selector(
        '[data-replay="hello|syd|lhr|replayed"]', state="attached", timeout=10_000
    )
    page.check_stayed_home()
