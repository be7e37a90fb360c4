"""Addresses belong to the org: the rules for serving one app's address from another.

An allocated address is counted once, in the org; which app serves it is an
assignment that can change. ``check_move`` says whether ``edgectl ips move`` may hand
an address from one app to another, and ``plan_declared`` what a deploy must move so
that every address a service lists under ``ips:`` is the app's. Both are pure: the
store reads what they need in its transaction and writes what they decide.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from edge.config.model import ServiceSpec
from edge.core.ipam import IpAssignment, normalize_address, raw_tcp_ports, shared_v4_problem
from edge.errors import BadRequest, Conflict, NotFound


@dataclass(frozen=True, slots=True)
class MoveTarget:
    """What the rules need to know about the app an address moves to."""

    name: str
    org: str
    services: tuple[ServiceSpec, ...]
    ips: tuple[IpAssignment, ...]


def shared_problem(app: str, services: Iterable[ServiceSpec]) -> str:
    """Why ``app``'s services cannot be served on the shared IPv4 ("" when they can): the
    rule of ``edge.core.ipam`` (raw TCP ports have nothing to route them by)."""
    return shared_v4_problem(app, raw_tcp_ports(services))


def check_move(
    address: str, source: str, source_ips: Sequence[IpAssignment], target: MoveTarget
) -> IpAssignment:
    """The assignment of ``address`` that may move from app ``source`` to ``target``.

    BadRequest: not an address, or the same app. NotFound: ``source`` does not hold it.
    Conflict: it is the source's primary IP, the target already has the shared IPv4, or
    the target's services cannot be served on the shared IPv4.
    """
    canonical = normalize_address(address)
    if source == target.name:
        raise BadRequest(f"{canonical} already belongs to app {source!r}: name another app")
    held = next((a for a in source_ips if a.address == canonical), None)
    if held is None:
        raise NotFound(f"{canonical} is not assigned to app {source!r}")
    if held.primary:
        raise Conflict(
            f"{canonical} is the primary IP of app {source!r} and cannot be moved; "
            "allocate another address for the app and move that one"
        )
    if held.shared:
        if any(a.shared for a in target.ips):
            raise Conflict(f"app {target.name!r} already has the shared IPv4 {canonical}")
        problem = shared_problem(target.name, target.services)
        if problem:
            raise Conflict(f"{canonical} is the shared IPv4: {problem}")
    return held


def moved(assignment: IpAssignment, target: str) -> IpAssignment:
    """``assignment`` as the target app holds it: same address, type, region, created
    time; never the target's primary (it keeps the primary it has)."""
    return IpAssignment(
        assignment.address,
        assignment.type,
        assignment.region,
        target,
        assignment.org,
        assignment.created_at,
        assignment.shared,
        False,
    )


def declared_ips(services: Sequence[ServiceSpec]) -> tuple[tuple[str, str], ...]:
    """Every address the services list under ``ips:`` with the path that names it
    (``services[0].ips[1]``), canonical, the first place of each address only."""
    seen: dict[str, str] = {}
    for s_index, service in enumerate(services):
        for i_index, address in enumerate(service.ips):
            seen.setdefault(normalize_address(address), f"services[{s_index}].ips[{i_index}]")
    return tuple((path, address) for address, path in seen.items())


def plan_declared(
    app: str,
    org: str,
    declared: Sequence[tuple[str, str]],
    org_ips: Mapping[str, IpAssignment],
    shared_v4: str,
) -> tuple[IpAssignment, ...]:
    """The assignments a deploy of ``app`` must move to it so that it holds every
    address of ``declared`` (path, address); ``org_ips`` maps each of the org's active
    dedicated addresses to its assignment.

    BadRequest: the shared IPv4, or an address the org does not hold (allocate it
    first). Conflict: another app's primary IP.
    """
    moves: list[IpAssignment] = []
    for path, address in declared:
        if address == shared_v4:
            raise BadRequest(
                f"{path}: {address} is the shared IPv4, which is no org's address: "
                "allocate it with `edgectl ips allocate-v4 --shared`"
            )
        held = org_ips.get(address)
        if held is None:
            raise BadRequest(
                f"{path}: {address} is not an address of org {org!r}: allocate it to one "
                "of the org's apps first (`edgectl ips allocate`)"
            )
        if held.app == app:
            continue
        if held.primary:
            raise Conflict(
                f"{path}: {address} is the primary IP of app {held.app!r} and cannot serve "
                f"app {app!r}"
            )
        moves.append(held)
    return tuple(moves)
