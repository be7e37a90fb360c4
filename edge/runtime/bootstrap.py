"""First start and every start: the admin token, the configured orgs and apps.

The admin token is written to ``STATE_DIR/token`` (mode 0600) and only its hash is
stored. Orgs named in the configuration are created when missing.

The configuration's apps follow one rule: an app's entry is applied (deployed as
``edgectl deploy`` would) only when that entry differs from the one applied last,
whose hash is kept in ``STATE_DIR/config-apps.json``. Restarting on the same file
therefore keeps every change made through the API since (machines added, removed or
stopped by hand); editing an app's entry makes the file win for that app, and the
log says what it changed, except that a machine stopped by hand whose own entry (by
id) did not change stays stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from edge.config.model import AppSpec, EdgeConfig
from edge.core.tokens import format_token, hash_token, token_matches
from edge.errors import EdgeError, StartupError
from edge.store import SYSTEM, Store

LOG = logging.getLogger("edge")
TOKEN_FILE = "token"
APPLIED_FILE = "config-apps.json"  # app name -> hash of its config entry applied last
METRICS_TOKEN_FILE = "metrics_token"
DEFAULT_ORG = "personal"


def write_private_file(path: Path, text: str) -> None:
    """Replace ``path`` atomically with ``text``, readable by this user only."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_token_file(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StartupError(f"cannot read the admin token {path}: {exc.strerror}") from None


def ensure_admin_token(store: Store, state_dir: Path) -> str:
    """The admin token's hash; a new token is made when none matches the stored hash."""
    path = state_dir / TOKEN_FILE
    stored = store.admin_token_hash()
    current = read_token_file(path)
    if stored and current and token_matches(current, stored):
        return stored
    if stored:
        LOG.warning("admin token file missing or changed: writing a new admin token")
    token = format_token(secrets.token_bytes(32))
    try:
        write_private_file(path, token + "\n")
    except OSError as exc:
        raise StartupError(f"cannot write the admin token {path}: {exc.strerror}") from None
    token_hash = hash_token(token)
    store.set_admin_token_hash(token_hash, by=SYSTEM)
    LOG.info("admin token written", extra={"path": str(path)})
    return token_hash


def ensure_metrics_token(state_dir: Path) -> str:
    """The hash of the token that may read /metrics (``metrics.require_token``).

    It lives only in ``STATE_DIR/metrics_token``, for Prometheus's ``credentials_file``;
    made when missing, kept across restarts so the scrape config stays valid.
    """
    path = state_dir / METRICS_TOKEN_FILE
    token = read_token_file(path)
    if token is None:
        token = format_token(secrets.token_bytes(32), prefix="edge_metrics_")
        try:
            write_private_file(path, token + "\n")
        except OSError as exc:
            raise StartupError(f"cannot write the metrics token {path}: {exc.strerror}") from None
        LOG.info("metrics token written", extra={"path": str(path)})
    return hash_token(token)


def ensure_orgs(store: Store, config: EdgeConfig) -> None:
    existing = {org.slug for org in store.list_orgs()}
    for slug in dict.fromkeys([DEFAULT_ORG, *(o.slug for o in config.orgs)]):
        if slug not in existing:
            # The org's own token is not shown: the admin token manages every org, and
            # `edgectl orgs create` is the way to get an org token.
            store.create_org(slug, hash_token(format_token(secrets.token_bytes(32))), by=SYSTEM)
            LOG.info("org created", extra={"org": slug})


def spec_hash(spec: AppSpec) -> str:
    """A stable hash of an app's config entry (after defaults were filled in)."""
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()


def machine_hashes(spec: AppSpec) -> dict[str, str]:
    """The hash of each machine entry with an id, by id."""
    return {
        m.id: hashlib.sha256(m.model_dump_json().encode()).hexdigest()
        for m in spec.machines
        if m.id is not None
    }


Applied = dict[str, dict[str, Any]]  # app -> {"hash": ..., "machines": {id: hash}}


def read_applied(path: Path) -> Applied:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        LOG.warning("cannot read %s (%s): applying every app of the config", path, exc)
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, dict)}


def keep_hand_stops(spec: AppSpec, before: dict[str, str], stopped: set[str]) -> AppSpec:
    """``spec`` with every machine stopped by hand, whose entry is as it was when last
    applied, kept stopped (the file changed elsewhere, not for that machine)."""
    now = machine_hashes(spec)
    machines = tuple(
        m.model_copy(update={"state": "stopped"})
        if m.id in stopped and m.state == "started" and before.get(m.id) == now[m.id]
        else m
        for m in spec.machines
    )
    return spec.model_copy(update={"machines": machines})


def ensure_apps(store: Store, config: EdgeConfig, state_dir: Path) -> None:
    """Deploy each app whose config entry changed since it was last applied (or that was
    never applied); keep the others as the API left them."""
    path = state_dir / APPLIED_FILE
    # An app that left the config is forgotten: if it comes back, it is applied again.
    declared = {spec.app for spec in config.apps}
    applied = {app: entry for app, entry in read_applied(path).items() if app in declared}
    for spec in config.apps:
        digest = spec_hash(spec)
        last = applied.get(spec.app)
        if last is not None and last.get("hash") == digest:
            LOG.info(
                "app %s: its config entry is unchanged since it was applied; "
                "keeping the changes made through the API",
                spec.app,
                extra={"app": spec.app},
            )
            continue
        if last is not None:
            stopped = _stopped_machines(store, spec.app)
            spec_to_apply = keep_hand_stops(spec, last.get("machines") or {}, stopped)
        else:
            spec_to_apply = spec
        _apply_app(store, spec_to_apply, first=last is None)
        applied[spec.app] = {"hash": digest, "machines": machine_hashes(spec)}
    try:
        write_private_file(path, json.dumps(applied, indent=2, sort_keys=True) + "\n")
    except OSError as exc:
        raise StartupError(f"cannot write {path}: {exc.strerror}") from None


def _stopped_machines(store: Store, app: str) -> set[str]:
    try:
        return {m.id for m in store.list_machines(app) if m.state == "stopped"}
    except EdgeError:  # destroyed through the API: the changed entry creates it again
        return set()


def _apply_app(store: Store, spec: AppSpec, *, first: bool) -> None:
    try:
        result = store.deploy_app(spec, by=SYSTEM)
    except EdgeError as exc:
        raise StartupError(f"cannot apply app {spec.app!r} from the config: {exc}") from None
    if result.created:
        ips = ", ".join(ip.address for ip in result.ips)
        LOG.info("app created", extra={"app": spec.app, "ips": ips})
    elif result.changed:
        what = (
            ", ".join(
                f"{len(ids)} machine(s) {verb}"
                for verb, ids in (
                    ("added", result.added),
                    ("updated", result.updated),
                    ("removed", result.removed),
                )
                if ids
            )
            or "services or primary region updated"
        )
        why = "applied for the first time" if first else "changed in the config"
        LOG.warning(
            "app %s %s: the config's entry replaced its state (%s)",
            spec.app, why, what, extra={"app": spec.app},
        )  # fmt: skip


def bootstrap(store: Store, state_dir: Path, config: EdgeConfig) -> str:
    """Run every first-start step; returns the admin token's hash."""
    token_hash = ensure_admin_token(store, state_dir)
    ensure_orgs(store, config)
    ensure_apps(store, config, state_dir)
    return token_hash
