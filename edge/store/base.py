"""The store interface: everything edge persists, behind one small synchronous Protocol.

The rules live in ``edge.core`` (``ipam``, ``apps``); a store reads the state they need
and writes their result in one transaction. The API calls a store from one worker
thread (``asyncio.to_thread`` or an executor); a store must also be safe to use from
several threads and, on a shared database, from several processes at once.

Conventions for every method:

- ``by`` (a ``Caller``) says who asks: its ``actor`` goes into the audit log with
  every change, and its ``org``, when set, limits app-scoped calls to that org's
  apps. Reads take that limit as ``org``. An app of another org raises NotFound
  exactly like an app that does not exist.
- ``now`` is epoch seconds (``None``: the store's clock).
- Failures are ``edge.errors`` classes: NotFound (404), Conflict (409), BadRequest
  (400), LimitExceeded (422), PoolExhausted (503), and StoreUnavailable (503) when the
  database itself cannot be used (still locked after the busy timeout, disk full, an
  I/O error). A failed call changes nothing.
- A method that returns has committed durably.
- Whether a caller may manage orgs or tokens at all is the API's decision; the
  store does not check it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from edge.config.model import AppSpec, MachineSpec, ServiceSpec
from edge.core.apps import AppRecord, Machine, MachineState, Org
from edge.core.ipam import IpAssignment, IpType

OrgScope = str | None  # only this org's apps (None: every org)
Now = float | None  # epoch seconds; None: the store's clock


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks for a change: ``actor`` is audited, ``org`` (if set) scopes app calls."""

    actor: str
    org: str | None = None

    @classmethod
    def for_org(cls, slug: str) -> Caller:
        """A caller holding ``slug``'s token: audited as ``org:<slug>``, limited to it."""
        return cls(f"org:{slug}", slug)


ADMIN = Caller("admin")  # the admin token: every org
SYSTEM = Caller("system")  # the daemon itself: first start, the configuration's apps


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One recorded change: who did what, when (epoch seconds), to which org/app."""

    id: int
    at: float
    actor: str
    action: str  # org.create, app.*, ip.allocate, ip.release, ip.move, machine.*
    org: str | None
    app: str | None
    target: str | None  # the address, machine id or slug acted on
    detail: str  # a short human-readable sentence


@dataclass(frozen=True, slots=True)
class MachineEvent:
    """One lifecycle event of a machine, like the platform's machine events: created,
    started, stopped, suspended, exited (with ``exit_code``), restarting, failed."""

    machine_id: str
    at: float
    kind: str
    exit_code: int | None
    detail: str  # why: "autostop: no load since the last pass", the last output lines ...


@dataclass(frozen=True, slots=True)
class CreatedApp:
    app: AppRecord
    ips: tuple[IpAssignment, ...]
    machines: tuple[Machine, ...]


@dataclass(frozen=True, slots=True)
class DeployResult:
    """What ``deploy_app`` did. ``ips`` are the assignments made by creating the app
    (empty on an update), ``machines`` all of its machines afterwards; ``added``,
    ``updated`` and ``removed`` are machine ids; ``app_updated`` says whether the
    primary region or the services changed; ``moved_ips`` the addresses that the
    services' ``ips:`` moved to the app from another app of its org."""

    app: AppRecord
    created: bool
    ips: tuple[IpAssignment, ...]
    machines: tuple[Machine, ...]
    added: tuple[str, ...]
    updated: tuple[str, ...]
    removed: tuple[str, ...]
    app_updated: bool = False
    moved_ips: tuple[str, ...] = ()  # addresses its services' ``ips:`` moved to it

    @property
    def changed(self) -> bool:
        """Whether the deploy changed anything (else it wrote nothing at all)."""
        return (
            self.created
            or self.app_updated
            or bool(self.added or self.updated or self.removed or self.moved_ips)
        )


@dataclass(frozen=True, slots=True)
class StoreSnapshot:
    """Everything the runtime routes on, read in one transaction at ``version``."""

    version: int
    apps: tuple[AppRecord, ...]
    machines: tuple[Machine, ...]
    ips: tuple[IpAssignment, ...]


class Store(Protocol):
    # --- lifecycle and change tracking ---------------------------------------------------

    def close(self) -> None:
        """Close every connection; the store must not be used afterwards."""
        ...

    def version(self) -> int:
        """A number that grows with every committed change (from any process): poll it
        and rebuild the routing snapshot when it moves."""
        ...

    def snapshot(self) -> StoreSnapshot:
        """Live apps, their machines and every active assignment, consistently."""
        ...

    # --- tokens and orgs -----------------------------------------------------------------

    def admin_token_hash(self) -> str | None:
        """The stored hash of the admin token; None before the first start made one."""
        ...

    def set_admin_token_hash(self, token_hash: str, *, by: Caller, now: Now = None) -> None: ...

    def create_org(self, slug: str, token_hash: str, *, by: Caller, now: Now = None) -> Org:
        """A new org whose token hashes to ``token_hash``. Conflict if the slug exists,
        BadRequest if it is not a valid slug."""
        ...

    def get_org(self, slug: str) -> Org:
        """NotFound when there is no such org."""
        ...

    def list_orgs(self) -> tuple[Org, ...]:
        """Every org, by slug."""
        ...

    def org_by_token_hash(self, token_hash: str) -> Org | None: ...

    def set_org_token_hash(
        self, slug: str, token_hash: str, *, by: Caller, now: Now = None
    ) -> None:
        """Replace an org's token (the old one stops working). NotFound for no such org."""
        ...

    # --- apps ----------------------------------------------------------------------------

    def create_app(
        self,
        spec: AppSpec,
        *,
        public_ips: bool = True,
        ipv6: bool = False,
        by: Caller,
        now: Now = None,
    ) -> CreatedApp:
        """The app ``spec.app`` in org ``spec.org`` with its services and machines, and its
        first IPs (a v4, the primary; plus a v6 with ``ipv6``; none without
        ``public_ips``), all in one transaction. NotFound (org, or not the caller's),
        Conflict (name taken), BadRequest (region; ``ipv6`` without ``public_ips``),
        LimitExceeded, PoolExhausted."""
        ...

    def deploy_app(
        self, spec: AppSpec, *, by: Caller, now: Now = None, public_ips: bool = True
    ) -> DeployResult:
        """Create the app of ``spec`` exactly as ``create_app`` (a v4 when ``public_ips``),
        or, when it exists, make it match ``spec`` in one transaction: its primary region,
        its services, and its machines. A machine of the file with an ``id`` is the
        machine with that id (added if there is none); one without is an existing machine
        in the same place (region, address, demo, ports) not claimed otherwise, an
        identical one first. Matched machines are updated where region, address, ports,
        weight, demo or state differ; machines of the app that nothing matched are removed.
        Deploying the same file again writes nothing: no audit entry, no version change.
        NotFound (no such org; for an org caller, an app of another org or a file naming
        another org), Conflict (an admin's file naming another org than the existing
        app's), BadRequest (an unknown region), LimitExceeded and PoolExhausted (when
        creating)."""
        ...

    def get_app(self, name: str, *, org: OrgScope = None) -> AppRecord: ...

    def list_apps(self, *, org: OrgScope = None) -> tuple[AppRecord, ...]:
        """Live apps, by name."""
        ...

    def update_services(
        self, name: str, services: tuple[ServiceSpec, ...], *, by: Caller, now: Now = None
    ) -> AppRecord: ...

    def destroy_app(self, name: str, *, by: Caller, now: Now = None) -> tuple[IpAssignment, ...]:
        """Destroy the app and its machines, releasing every IP it held (returned)."""
        ...

    # --- machines ------------------------------------------------------------------------

    def list_machines(self, app: str, *, org: OrgScope = None) -> tuple[Machine, ...]: ...

    def add_machine(self, app: str, spec: MachineSpec, *, by: Caller, now: Now = None) -> Machine:
        """A new machine; its id is ``spec.id`` or a new 14-hex-character one. Conflict if
        the app already has that id, BadRequest for an unknown region."""
        ...

    def set_machine_state(
        self,
        app: str,
        machine_id: str,
        state: MachineState,
        *,
        by: Caller,
        now: Now = None,
        reason: str | None = None,
    ) -> Machine:
        """NotFound for no such machine, BadRequest for a state other than started, stopped
        or suspended. ``reason`` (why: autostop, autostart, the process exited) goes into
        the audit entry. Setting the state a machine already has writes nothing."""
        ...

    def record_machine_event(
        self,
        app: str,
        machine_id: str,
        kind: str,
        detail: str = "",
        *,
        exit_code: int | None = None,
        now: Now = None,
    ) -> None:
        """Keep one lifecycle event (the newest 200 per machine are kept). Events are not
        routing state: recording one does not change ``version``. NotFound for no app."""
        ...

    def list_machine_events(
        self, app: str, machine_id: str, *, org: OrgScope = None, limit: int = 50
    ) -> tuple[MachineEvent, ...]:
        """A machine's events, newest first. NotFound for no such app."""
        ...

    def remove_machine(
        self, app: str, machine_id: str, *, by: Caller, now: Now = None
    ) -> Machine: ...

    # --- IP assignments ------------------------------------------------------------------

    def allocate_ip(
        self,
        app: str,
        ip_type: IpType = "v4",
        region: str | None = None,
        *,
        by: Caller,
        now: Now = None,
    ) -> IpAssignment:
        """A new assignment (the rules: ``edge.core.ipam.plan_allocation``). NotFound (app),
        BadRequest (type, region), Conflict (a second shared_v4), LimitExceeded,
        PoolExhausted."""
        ...

    def list_ips(self, app: str, *, org: OrgScope = None) -> tuple[IpAssignment, ...]:
        """The app's active assignments in allocation order (the primary first)."""
        ...

    def release_ip(self, app: str, address: str, *, by: Caller, now: Now = None) -> IpAssignment:
        """Release ``address`` from the app (returned). BadRequest (not an IP address),
        NotFound (app, or not assigned to it), Conflict (the primary)."""
        ...

    def move_ip(
        self, address: str, from_app: str, to_app: str, *, by: Caller, now: Now = None
    ) -> IpAssignment:
        """Serve ``address`` from app ``to_app`` instead of ``from_app`` (returned as
        the target now holds it), keeping its created time; the org's count is
        unchanged. The rules: ``edge.core.ip_moves.check_move``. NotFound (either app,
        including an app of another org; the address not ``from_app``'s), BadRequest
        (not an address; the same app), Conflict (the primary IP; the shared IPv4 to an
        app that has it or cannot use it)."""
        ...

    def list_active_ips(self) -> tuple[IpAssignment, ...]:
        """Every active assignment of every live app, for the listeners."""
        ...

    # --- audit ---------------------------------------------------------------------------

    def list_audit(
        self, *, org: OrgScope = None, app: str | None = None, limit: int = 100
    ) -> tuple[AuditEntry, ...]:
        """The latest audit entries, newest first."""
        ...
