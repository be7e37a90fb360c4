"""``scripts/lab up`` and ``down``: build the lab from its topology, and take it all away.

Everything the lab creates is named with its prefix (namespaces ``elab-*``, host
devices ``elab-*``) and every process it starts runs inside one of its namespaces, so
``down`` finds all of it from the names alone, also after ``up`` crashed half way.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edge.config.model import LatencySpec
from edge.config.regions import default_catalogue
from edge.core.latency import LatencyModel
from edge.lab import bird, labconfig
from edge.lab.links import Backend, make_links
from edge.lab.netns import (
    LabError,
    add_namespace,
    host_links,
    in_ns,
    ip,
    kill_all,
    namespaces,
    ns_pids,
    run,
    spawn,
    wait_for,
)
from edge.lab.topology import (
    ANYCAST_PREFIX,
    PG_PORT,
    Policy,
    Topology,
    build_topology,
    expected_catchments,
)

PG_BIN = Path(os.environ.get("EDGE_LAB_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_DB = "edge"


@dataclass(frozen=True, slots=True)
class LabOptions:
    pops: tuple[str, ...]
    clients: tuple[str, ...]
    machines: tuple[str, ...]
    policy: Policy
    prefix: str
    state_dir: Path
    links: Backend = "wire"


def latency_model() -> tuple[LatencyModel, float]:
    spec = LatencySpec()
    return LatencyModel.build(spec, default_catalogue()), spec.per_hop_floor


def topology_for(options: LabOptions) -> Topology:
    model, floor = latency_model()
    try:
        return build_topology(
            model, floor, options.pops, options.clients, options.machines, options.policy,
            options.prefix,
        )  # fmt: skip
    except ValueError as exc:
        raise LabError(str(exc)) from None


def require_root(command: str) -> None:
    if os.geteuid() != 0:
        raise LabError(
            f"scripts/lab {command} needs root: it creates network namespaces, links and "
            "routes (CAP_NET_ADMIN) and runs BIRD; run it with sudo"
        )
    for tool in ("ip", "bird", "birdc"):
        if shutil.which(tool) is None:
            raise LabError(f"{tool} is not installed (apt-get install iproute2 bird2)")


def save_options(options: LabOptions) -> None:
    data = {
        "pops": options.pops, "clients": options.clients, "machines": options.machines,
        "policy": options.policy, "prefix": options.prefix, "links": options.links,
    }  # fmt: skip
    (options.state_dir / "lab.json").write_text(json.dumps(data), encoding="utf-8")


def load_options(state_dir: Path) -> LabOptions:
    try:
        data = json.loads((state_dir / "lab.json").read_text(encoding="utf-8"))
        return LabOptions(
            tuple(data["pops"]), tuple(data["clients"]), tuple(data["machines"]), data["policy"],
            data["prefix"], state_dir, data.get("links", "wire"),
        )  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        raise LabError(
            f"no lab is up (nothing usable in {state_dir}); run scripts/lab up"
        ) from None


# --- down ------------------------------------------------------------------------------


def down(prefix: str, state_dir: Path) -> list[str]:
    """Remove every namespace, host device and process of the lab; what was removed."""
    removed = []
    found = namespaces(prefix)
    pids = [pid for ns in found for pid in ns_pids(ns)]
    kill_all(pids)
    for ns in found:
        ip("netns", "del", ns, check=False)
        removed.append(f"namespace {ns}")
    for link in host_links(prefix):
        ip("link", "del", link, check=False)
        removed.append(f"link {link}")
    if state_dir.exists():
        shutil.rmtree(state_dir, ignore_errors=True)
    return removed


# --- up --------------------------------------------------------------------------------


def up(options: LabOptions, out: Any = sys.stderr) -> Topology:
    topology = topology_for(options)
    if namespaces(options.prefix) or host_links(options.prefix) or options.state_dir.exists():
        print("a previous lab was found: taking it down first", file=out)
        down(options.prefix, options.state_dir)
    _check_mgmt_free(topology)
    options.state_dir.mkdir(parents=True, mode=0o755)
    save_options(options)
    try:
        _build(topology, options, out)
    except BaseException:
        kept = _keep_logs(options.state_dir)
        down(options.prefix, options.state_dir)
        print(f"scripts/lab up failed and took down what it had built; its logs: {kept}",
              file=out)  # fmt: skip
        raise
    return topology


def _check_mgmt_free(topology: Topology) -> None:
    """The management /24 is the one network the host sees: it must be ours alone."""
    result = ip("-json", "-4", "addr", "show", check=False)
    try:
        rows = json.loads(result.stdout or "[]")
    except ValueError:
        rows = []
    network = ipaddress.ip_network(topology.mgmt_net)
    for row in rows:
        for info in row.get("addr_info", []):
            if ipaddress.ip_address(info.get("local", "0.0.0.0")) in network:
                raise LabError(
                    f"{topology.mgmt_net} (the lab's management network) is already used by "
                    f"{row.get('ifname')} on this host; is another lab up? Take it down or "
                    "pick another --prefix"
                )


def _keep_logs(state: Path) -> Path:
    """Move a failed up's logs next to the state directory, so down cannot remove them."""
    kept = state.with_name(f"{state.name}-failed-logs")
    shutil.rmtree(kept, ignore_errors=True)
    if (state / "logs").exists():
        shutil.move(state / "logs", kept)
    return kept


def _build(topology: Topology, options: LabOptions, out: Any) -> None:
    state = options.state_dir
    print(f"namespaces: {len(topology.namespaces())}", file=out)
    for ns in topology.namespaces():
        add_namespace(ns, forwarding=ns.startswith(f"{topology.prefix}-r-"))
    ip("link", "add", "name", topology.bridge, "type", "bridge")
    ip("addr", "add", f"{topology.host_mgmt}/24", "dev", topology.bridge)
    ip("link", "set", topology.bridge, "up")
    make_links(topology, state, options.links)
    how = "tc netem on veth pairs" if options.links == "netem" else "delay line on TAP devices"
    print(f"links: {len(topology.links)} ({how})", file=out)
    _address_links(topology)
    _start_bird(topology, state)
    for machine in topology.machines:
        spawn(machine.ns, [sys.executable, "-m", "edge.lab.machine", "--app", labconfig.APP,
                           "--id", machine.machine_id, "--region", machine.region,
                           "--listen", f"{machine.address}:8080"],
              state / "logs" / f"machine-{machine.region}.log")  # fmt: skip
    store = _start_postgres(topology, state) if cluster_support() else None
    print(f"store: {store or 'SQLite per node (this edge has no --store)'}", file=out)
    _start_nodes(topology, state, store)
    print("edge nodes: up", file=out)
    _start_agents(topology, state)
    wait_for("BGP to carry every client region to a PoP", lambda: _converged(topology, state), 60)


def _address_links(topology: Topology) -> None:
    for link in topology.links:
        for end in (link.a, link.b):
            if end.ns is None:
                ip("link", "set", end.ifname, "master", topology.bridge)
                ip("link", "set", end.ifname, "up")
            elif end.address is not None:
                ip("addr", "add", end.address, "dev", end.ifname, ns=end.ns)
    for pop in topology.pops:
        ip("route", "add", "default", "via", pop.gateway, ns=pop.ns)
        # Every anycast address is local here (AnyIP): the edge node binds any of them.
        ip("route", "add", "local", ANYCAST_PREFIX, "dev", "lo", ns=pop.ns)
    for client in topology.clients:
        ip("route", "add", "default", "via", client.gateway, ns=client.ns)
    for machine in topology.machines:
        ip("route", "add", "default", "via", machine.gateway, ns=machine.ns)


def bird_socket(state: Path, ns: str) -> str:
    return str(state / "bird" / f"{ns}.ctl")


def _start_bird(topology: Topology, state: Path) -> None:
    folder = state / "bird"
    folder.mkdir(exist_ok=True)
    configs = [(r.ns, bird.router_config(topology, r.region)) for r in topology.routers]
    configs += [(p.ns, bird.pop_config(topology, p)) for p in topology.pops]
    for ns, text in configs:
        path = folder / f"{ns}.conf"
        path.write_text(text, encoding="utf-8")
        run("bird", "-p", "-c", str(path))  # parse only: a config error names the file
        spawn(ns, ["bird", "-f", "-c", str(path), "-s", bird_socket(state, ns)],
              state / "logs" / f"bird-{ns}.log")  # fmt: skip
    for ns, _ in configs:
        wait_for(f"BIRD in {ns}", lambda ns=ns: Path(bird_socket(state, ns)).exists(), 20)


def cluster_support() -> bool:
    """Whether this edge has the scale-out issue's ``--store`` and ``--node`` options."""
    result = run(sys.executable, "-m", "edge.cli.edge", "serve", "--help", check=False)
    return "--store" in result.stdout and "--node" in result.stdout


def _start_postgres(topology: Topology, state: Path) -> str:
    for folder in (state, *state.parents):
        if not folder.stat().st_mode & 0o001:
            raise LabError(
                f"PostgreSQL runs as the postgres user and cannot enter {folder} (mode "
                f"{folder.stat().st_mode & 0o777:o}); put the lab elsewhere with EDGE_LAB_DIR"
            )
    data, sockets = state / "pg" / "data", state / "pg" / "run"
    sockets.mkdir(parents=True)
    os.chmod(state / "pg", 0o755)
    run("chown", "-R", "postgres:postgres", str(state / "pg"))
    run("runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(data),
        "-A", "trust", "--no-sync", "-U", "postgres", timeout=120)  # fmt: skip
    with (data / "pg_hba.conf").open("a", encoding="utf-8") as hba:
        hba.write(f"host all all {topology.mgmt_net} trust  # the lab's management network\n")
    spawn(topology.cp_ns, ["runuser", "-u", "postgres", "--", str(PG_BIN / "postgres"),
                           "-D", str(data), "-k", str(sockets), "-p", str(PG_PORT),
                           "-c", f"listen_addresses={topology.cp_mgmt}", "-c", "fsync=off"],
          state / "logs" / "postgres.log")  # fmt: skip
    wait_for("PostgreSQL", (sockets / f".s.PGSQL.{PG_PORT}").exists, 60)
    in_ns(topology.cp_ns, "runuser", "-u", "postgres", "--", str(PG_BIN / "createdb"),
          "-h", str(sockets), "-p", str(PG_PORT), PG_DB)  # fmt: skip
    return f"postgresql://postgres@{topology.cp_mgmt}:{PG_PORT}/{PG_DB}"


def node_dir(state: Path, pop: str) -> Path:
    return state / "nodes" / pop


def shared_store(state: Path) -> str | None:
    try:
        return (state / "store.txt").read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def node_state_dir(state: Path, pop: str) -> Path:
    """On a shared store every node shares one state directory (the admin token, TLS
    certificates), as scripts/cluster does; alone, each node has its own SQLite there."""
    return state / "edge-state" if shared_store(state) else node_dir(state, pop) / "state"


def token_file(state: Path, pop: str) -> Path:
    return node_state_dir(state, pop) / "token"


def _start_nodes(topology: Topology, state: Path, store: str | None) -> None:
    (state / "store.txt").write_text(store or "", encoding="utf-8")
    for index, pop in enumerate(topology.pops):
        start_node(topology, state, pop.region)
        if store is not None and index == 0:
            # The first node creates the schema and the apps; the others join it.
            wait_for(f"the {pop.region} edge node", lambda pop=pop: node_healthy(pop.api_url), 60)
    for pop in topology.pops:
        wait_for(f"the {pop.region} edge node (logs/edge-{pop.region}.log)",
                 lambda pop=pop: node_healthy(pop.api_url), 60)  # fmt: skip


def start_node(topology: Topology, state: Path, region: str) -> None:
    """Start the PoP's edge node (again): its own state dir, the shared store if any."""
    pop = topology.pop(region)
    store = shared_store(state)
    folder = node_dir(state, pop.region)
    folder.mkdir(parents=True, exist_ok=True)
    config = labconfig.node_config(topology, None if store else [pop.region])
    (folder / "edge.yaml").write_text(yaml.safe_dump(config, sort_keys=False), "utf-8")
    args = [sys.executable, "-m", "edge.cli.edge", "serve", "--config",
            str(folder / "edge.yaml"), "--state-dir", str(node_state_dir(state, region)),
            "--api", f"{pop.mgmt}:4280", "--log-format", "json"]  # fmt: skip
    if store is not None:
        args += ["--store", store, "--node", pop.region, "--pops", pop.region]
    spawn(pop.ns, args, state / "logs" / f"edge-{pop.region}.log")


def node_healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/healthz", timeout=1.0) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def start_agent(topology: Topology, state: Path, region: str) -> None:
    pop = topology.pop(region)
    # A node takes faults only for the PoPs it serves: its own node is the one to ask.
    args = [sys.executable, "-m", "edge.lab.agent", "--pop", pop.region,
            "--health", f"{pop.api_url}/healthz", "--birdc-socket", bird_socket(state, pop.ns),
            "--node", f"{pop.api_url}|{token_file(state, pop.region)}"]  # fmt: skip
    spawn(pop.ns, args, state / "logs" / f"agent-{pop.region}.log")  # fmt: skip


def _start_agents(topology: Topology, state: Path) -> None:
    for pop in topology.pops:
        start_agent(topology, state, pop.region)


def _converged(topology: Topology, state: Path) -> bool:
    """Every BGP session established and every client region routed as expected."""
    from edge.lab.report import birdc, protocols, real_catchments

    for router in topology.routers:
        rows = protocols(birdc(state, router.ns, "show", "protocols"))
        if any(not info.startswith("Established") for name, (_, info) in rows.items()
               if name.startswith(("r_", "pop_"))):  # fmt: skip
            return False
    return real_catchments(topology, state) == expected_catchments(topology)
