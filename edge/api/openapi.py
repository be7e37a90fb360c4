"""The OpenAPI 3.1 description of the REST API (served at ``/v1/openapi.json``).

This module assembles the document: the shared helpers live in ``openapi_helpers``, the
component schemas in ``openapi_schemas`` and the paths in ``openapi_paths``.

A test checks that every route the server has is described here and nothing more,
and that the document validates.
"""

from __future__ import annotations

import functools
from typing import Any

from edge import __version__
from edge.api.openapi_paths import _paths, _process_paths
from edge.api.openapi_schemas import SCHEMAS, _closed_bodies
from edge.config.regions import default_catalogue

__all__ = ["openapi_document"]


@functools.cache
def openapi_document(
    regions: tuple[str, ...] | None = None, pops: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """The document; region and PoP fields are enums of the daemon's region codes and PoPs
    (by default those of the built-in catalogue, as ``edge serve`` without a config)."""
    if regions is None or pops is None:
        catalogue = default_catalogue()
        regions = tuple(sorted(catalogue.codes())) if regions is None else regions
        pops = tuple(r.code for r in catalogue.current()) if pops is None else pops
    paths = {**_paths(regions), **_process_paths()}
    schemas = {
        **_closed_bodies(paths, SCHEMAS),
        "RegionCode": {"type": "string", "enum": list(regions)},
        "PopCode": {"type": "string", "enum": list(pops)},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "edge API",
            "version": __version__,
            "description": "Apps, machines and IP addresses of an edge daemon, "
            "shaped like the platform's Machines API.",
        },
        "servers": [{"url": "http://127.0.0.1:4280"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
