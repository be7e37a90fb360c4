"""Orgs, apps and the region catalogue: ``/v1/orgs``, ``/v1/apps``, ``/v1/platform/regions``."""

from __future__ import annotations

import secrets

from aiohttp import web

from edge.api.app_context import CONTEXT
from edge.api.auth import IDENTITY
from edge.api.bodies import Body, port_keys, read_body, read_json_object
from edge.api.render import app_json, org_json, region_json
from edge.core.tokens import format_token, hash_token
from edge.errors import BadRequest

routes = web.RouteTableDef()


class CreateOrg(Body):
    slug: str


class CreateApp(Body):
    app_name: str
    org_slug: str | None = None
    primary_region: str | None = None
    ipv6: bool = False
    public_ips: bool = True


@routes.get("/v1/platform/regions")
async def list_regions(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    regions = [region_json(r) for r in context.catalogue]
    return web.json_response({"Regions": regions, "Nearest": context.config.edge.local_region})


@routes.post("/v1/orgs")
async def create_org(request: web.Request) -> web.Response:
    identity = request[IDENTITY]
    identity.require_admin("creating an org")
    body = await read_body(request, CreateOrg)
    token = format_token(secrets.token_bytes(32))
    context = request.app[CONTEXT]
    org = await context.store.call(
        context.store.store.create_org, body.slug, hash_token(token), by=identity.caller
    )
    return web.json_response({"slug": org.slug, "token": token}, status=201)


@routes.get("/v1/orgs")
async def list_orgs(request: web.Request) -> web.Response:
    identity, context = request[IDENTITY], request.app[CONTEXT]
    store = context.store.store

    def collect() -> list[dict[str, object]]:
        snapshot = store.snapshot()
        out = []
        for org in store.list_orgs():
            if identity.org_scope not in (None, org.slug):
                continue
            apps = sum(1 for a in snapshot.apps if a.org == org.slug)
            ips = sum(1 for ip in snapshot.ips if ip.org == org.slug)
            out.append(org_json(org, apps, ips))
        return out

    return web.json_response({"orgs": await context.store.call(collect)})


@routes.get("/v1/apps")
async def list_apps(request: web.Request) -> web.Response:
    identity, context = request[IDENTITY], request.app[CONTEXT]
    apps = await context.store.call(context.store.store.list_apps, org=identity.org_scope)
    return web.json_response({"apps": [app_json(a) for a in apps]})


@routes.post("/v1/apps")
async def create_app(request: web.Request) -> web.Response:
    identity, context = request[IDENTITY], request.app[CONTEXT]
    body = await read_body(request, CreateApp)
    org = body.org_slug or identity.org_scope or "personal"
    region = body.primary_region or context.config.edge.local_region
    spec = context.validate_app(
        {"app": body.app_name, "org": org, "primary_region": region},
        renames={"app": "app_name", "org": "org_slug"},
    )
    created = await context.store.call(
        context.store.store.create_app,
        spec,
        public_ips=body.public_ips,
        ipv6=body.ipv6,
        by=identity.caller,
    )
    listeners = await context.changed()
    answer = app_json(created.app, created.ips)
    answer["listeners"] = listeners.for_addresses(ip.address for ip in created.ips)
    return web.json_response(answer, status=201)


@routes.get("/v1/apps/{app}")
async def get_app(request: web.Request) -> web.Response:
    identity, context = request[IDENTITY], request.app[CONTEXT]
    name, store = request.match_info["app"], context.store.store

    def collect() -> dict[str, object]:
        app = store.get_app(name, org=identity.org_scope)
        body = app_json(app, store.list_ips(name, org=identity.org_scope))
        body["services"] = [service.model_dump(mode="json") for service in app.services]
        body["declared_in_config"] = context.declares(name)
        return body

    return web.json_response(await context.store.call(collect))


@routes.delete("/v1/apps/{app}")
async def destroy_app(request: web.Request) -> web.Response:
    identity, context = request[IDENTITY], request.app[CONTEXT]
    name, store = request.match_info["app"], context.store.store

    await context.store.call(store.destroy_app, name, by=identity.caller)
    await context.changed()
    return web.Response(status=204)


@routes.put("/v1/apps/{app}")
async def deploy_app(request: web.Request) -> web.Response:
    """Create or update an app from an app file (services and machines), atomically."""
    identity, context = request[IDENTITY], request.app[CONTEXT]
    name = request.match_info["app"]
    data = await read_json_object(request)
    if data.setdefault("app", name) != name:
        raise BadRequest(f"app: the file is for {data['app']!r} but the URL names {name!r}")
    data.setdefault("org", identity.org_scope or "personal")
    for machine in data.get("machines") or ():
        if isinstance(machine, dict) and "ports" in machine:
            machine["ports"] = port_keys(machine["ports"])
    spec = context.validate_app(data, renames={})
    if any(m.command is not None for m in spec.machines):
        # A command runs on this host as edge's user: only the operator may ask for one.
        identity.require_admin("a machine with a command")
    store = context.store.store
    result = await context.store.call(store.deploy_app, spec, by=identity.caller)
    listeners = await context.changed()
    ips = await context.store.call(store.list_ips, name, org=identity.org_scope)
    answer = app_json(result.app, result.ips)
    answer.update(
        created=result.created,
        added=list(result.added),
        updated=list(result.updated),
        removed=list(result.removed),
        services_updated=result.app_updated,
        ips_moved=list(result.moved_ips),
        listeners=listeners.for_addresses(ip.address for ip in ips),
    )
    if result.changed and context.declares(name):
        answer["warning"] = (
            f"app {name!r} is also declared in the daemon's config file: this deploy lasts "
            "until that entry of the config is edited; the edited entry is applied at the "
            "next start and replaces it"
        )
    return web.json_response(answer, status=201 if result.created else 200)
