"""First start and every start: the admin token, the configured orgs and apps.

The admin token is written to ``STATE_DIR/token`` (mode 0600) and only its hash is
stored. Orgs named in the configuration are created when missing.

The configuration's apps follow one rule: an app's entry is applied (deployed as
``edgectl deploy`` would) only when that entry differs from the one applied last,
whose hash is kept in ``STATE_DIR/config-apps.json``. Restarting on the same file
therefore keeps every change made through the API since (machines added, removed or
stopped by hand); editing an app's entry makes the file win for that app, and the
log says what it changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
from pathlib import Path

from edge.config.model import AppSpec, EdgeConfig
from edge.core.tokens import format_token, hash_token, token_matches
from edge.errors import EdgeError, StartupError
from edge.store import SYSTEM, Store

LOG = logging.getLogger("edge")
TOKEN_FILE = "token"
APPLIED_FILE = "config-apps.json"  # app name -> hash of its config entry applied last
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


def read_applied(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        LOG.warning("cannot read %s (%s): applying every app of the config", path, exc)
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def ensure_apps(store: Store, config: EdgeConfig, state_dir: Path) -> None:
    """Deploy each app whose config entry changed since it was last applied (or that was
    never applied); keep the others as the API left them."""
    path = state_dir / APPLIED_FILE
    # An app that left the config is forgotten: if it comes back, it is applied again.
    declared = {spec.app for spec in config.apps}
    applied = {app: digest for app, digest in read_applied(path).items() if app in declared}
    for spec in config.apps:
        digest = spec_hash(spec)
        if applied.get(spec.app) == digest:
            LOG.info(
                "app %s: its config entry is unchanged since it was applied; "
                "keeping the changes made through the API",
                spec.app,
                extra={"app": spec.app},
            )
            continue
        _apply_app(store, spec, first=spec.app not in applied)
        applied[spec.app] = digest
    try:
        write_private_file(path, json.dumps(applied, indent=2, sort_keys=True) + "\n")
    except OSError as exc:
        raise StartupError(f"cannot write {path}: {exc.strerror}") from None


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
