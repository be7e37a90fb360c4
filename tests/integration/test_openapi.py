"""The OpenAPI document validates and describes exactly the routes the server has."""

from __future__ import annotations

from pathlib import Path

from openapi_spec_validator import validate

from edge.api.app import build_api
from edge.api.app_context import ApiContext
from edge.api.auth import TokenCheck
from edge.api.openapi import openapi_document
from edge.cli.edge import default_config
from edge.config.regions import default_catalogue
from edge.core.ipam import IpamPolicy
from edge.runtime.metrics import Metrics
from edge.runtime.store_runner import StoreRunner
from edge.store import open_store
from tests.integration.daemon import EdgeProcess, start_edge


async def no_org(token_hash: str) -> str | None:
    return None


def server_routes(tmp_path: Path) -> set[tuple[str, str]]:
    catalogue = default_catalogue()
    config = default_config(catalogue)
    store = open_store(tmp_path, IpamPolicy.from_spec(config.ipam), catalogue.codes())
    try:
        context = ApiContext(
            metrics=Metrics(), config=config, catalogue=catalogue, store=StoreRunner(store)
        )
        app = build_api(context, TokenCheck("sha256:0", no_org))
        return {
            (route.method.lower(), route.resource.canonical)
            for route in app.router.routes()
            # /ui is the dashboard's HTML and assets, not part of the API.
            if route.method != "HEAD"
            and route.resource is not None
            and not route.resource.canonical.startswith("/ui")
        }
    finally:
        store.close()


def documented_routes() -> set[tuple[str, str]]:
    verbs = {"get", "post", "put", "patch", "delete"}
    return {
        (verb, path)
        for path, item in openapi_document()["paths"].items()
        for verb in item
        if verb in verbs
    }


def test_document_is_valid_openapi_3_1() -> None:
    document = openapi_document()
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_every_route_is_documented_and_nothing_else(tmp_path: Path) -> None:
    assert server_routes(tmp_path) == documented_routes()


def test_daemon_serves_it_without_a_token(tmp_path: Path) -> None:
    edge: EdgeProcess = start_edge(tmp_path)
    try:
        assert edge.get_json("/v1/openapi.json") == openapi_document()
    finally:
        edge.kill()
