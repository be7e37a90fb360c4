"""First start and every start: the admin token, the configured orgs and apps.

The admin token is written to ``STATE_DIR/token`` (mode 0600) and only its hash is
stored. Orgs and apps named in the configuration are created when missing, so
restarting on the same configuration changes nothing.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from edge.config.model import EdgeConfig
from edge.core.tokens import format_token, hash_token, token_matches
from edge.errors import EdgeError, StartupError
from edge.store import SYSTEM, Store

LOG = logging.getLogger("edge")
TOKEN_FILE = "token"
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


def ensure_apps(store: Store, config: EdgeConfig) -> None:
    """Deploy every app of the configuration: created when missing, brought in line with
    the file otherwise (machines added, updated, removed), nothing written when equal."""
    for spec in config.apps:
        try:
            result = store.deploy_app(spec, by=SYSTEM)
        except EdgeError as exc:
            raise StartupError(f"cannot apply app {spec.app!r} from the config: {exc}") from None
        if result.created:
            ips = ", ".join(ip.address for ip in result.ips)
            LOG.info("app created", extra={"app": spec.app, "ips": ips})
        elif result.changed:
            LOG.info("app updated from the config", extra={"app": spec.app})


def bootstrap(store: Store, state_dir: Path, config: EdgeConfig) -> str:
    """Run every first-start step; returns the admin token's hash."""
    token_hash = ensure_admin_token(store, state_dir)
    ensure_orgs(store, config)
    ensure_apps(store, config)
    return token_hash
