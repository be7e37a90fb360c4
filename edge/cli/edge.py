"""``edge``: run the daemon (``serve``) and local commands (``check-config``, ``regions``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from edge import __version__
from edge.cli.table import render_table
from edge.config.load import load_config, parse_config
from edge.config.model import EdgeConfig, LatencySpec
from edge.config.regions import default_catalogue
from edge.core.regions import Region, RegionCatalogue
from edge.errors import ConfigError, EdgeError
from edge.runtime.logs import configure_logging
from edge.runtime.statedir import default_state_dir

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# With no --config the daemon runs with every current region as a PoP and no apps.
DEFAULT_LOCAL_REGION = "lhr"


def default_config(catalogue: RegionCatalogue) -> EdgeConfig:
    pops = [r.code for r in catalogue.current()]
    local = os.environ.get("EDGE_LOCAL_REGION", DEFAULT_LOCAL_REGION)
    return parse_config({"edge": {"pops": pops, "local_region": local}}, catalogue, "defaults")


class ShowVersion(argparse.Action):
    """``--version``: the version, then what runs: the compiled hot path or pure Python."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(
            option_strings,
            dest=argparse.SUPPRESS,
            default=argparse.SUPPRESS,
            nargs=0,
            help="show the version and whether the hot path is compiled (mypyc), then exit",
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        from edge.build import describe

        print(f"edge {__version__}\nhot path: {describe()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge", description=__doc__)
    parser.add_argument("--version", action=ShowVersion)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the edge daemon")
    serve.add_argument("--config", type=Path, help="edge.yaml (default: built-in, no apps)")
    serve.add_argument(
        "--state-dir", type=Path, help="persistent state (default: $EDGE_STATE_DIR, ...)"
    )
    serve.add_argument("--api", metavar="HOST:PORT", help="control-plane address (api.listen)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--log-format", default="human", choices=["human", "json"])
    serve.add_argument(
        "--drain-timeout",
        type=float,
        metavar="SECONDS",
        help="grace period for in-flight work at shutdown (default: drain_timeout, 10 s)",
    )

    serve.add_argument(
        "--store",
        metavar="URL",
        help="postgresql://... : a control plane shared by several nodes "
        "(store.url; default: SQLite in the state directory)",
    )
    serve.add_argument(
        "--node",
        metavar="NAME",
        help="this node's name in a cluster (default: the host name); shares listeners "
        "with the other nodes on this host (SO_REUSEPORT)",
    )
    serve.add_argument(
        "--pops",
        type=region_list,
        metavar="CODES",
        help="the PoPs this node serves, e.g. lhr,fra (default: edge.pops)",
    )

    serve.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        metavar="N",
        help="N processes accepting on the same listeners (SO_REUSEPORT), one store and "
        "one health picture (default: 1)",
    )
    serve.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # set by the supervisor
    serve.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)

    migrate = commands.add_parser("migrate", help="apply the store's schema migrations")
    migrate.add_argument("--config", type=Path, help="edge.yaml (its store.url)")
    migrate.add_argument("--store", metavar="URL", help="postgresql://... (overrides store.url)")
    migrate.add_argument("--state-dir", type=Path, help="the SQLite state directory")
    migrate.add_argument(
        "--check", action="store_true", help="only report the schema version, change nothing"
    )

    check = commands.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file", type=Path)

    regions = commands.add_parser(
        "regions", help="print the region catalogue (--rtt-from: the modelled RTT from one)"
    )
    regions.add_argument(
        "--rtt-from",
        metavar="REGION",
        help="list every region with its modelled round trip from REGION, nearest first",
    )
    regions.add_argument(
        "--config", type=Path, help="edge.yaml whose latency: section to use (default: built-in)"
    )
    regions.add_argument("--json", action="store_true", help="print JSON")
    return parser


def cmd_check_config(file: Path) -> int:
    try:
        load_config(file, default_catalogue())
    except ConfigError as exc:
        print(f"{file}: {len(exc.problems)} error(s)", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_FAILED
    print("ok")
    return EXIT_OK


def cmd_regions(args: argparse.Namespace) -> int:
    if args.rtt_from is not None:
        return cmd_regions_rtt(args.rtt_from, args.config, args.json)
    if args.json:
        print(json.dumps({"regions": [_region_json(r) for r in default_catalogue()]}, indent=2))
        return EXIT_OK
    rows = [
        (
            r.code,
            r.city,
            f"{r.latitude:.2f}",
            f"{r.longitude:.2f}",
            "yes" if r.gateway else "",
            "deprecated" if r.deprecated else "current",
        )
        for r in default_catalogue()
    ]
    print(render_table(["code", "city", "latitude", "longitude", "gateway", "status"], rows))
    return EXIT_OK


def _region_json(region: Region) -> dict[str, object]:
    return {
        "code": region.code,
        "city": region.city,
        "latitude": region.latitude,
        "longitude": region.longitude,
        "gateway": region.gateway,
        "deprecated": region.deprecated,
    }


def cmd_regions_rtt(origin: str, config_file: Path | None, as_json: bool) -> int:
    """Every region with its modelled RTT from ``origin``, nearest first."""
    from edge.core.latency import LatencyModel

    catalogue = default_catalogue()
    code = origin.strip().lower()
    if code not in catalogue:
        raise ConfigError(f"--rtt-from {origin!r}: not a region code; `edge regions` lists them")
    spec = load_config(config_file, catalogue).latency if config_file else LatencySpec()
    model = LatencyModel.build(spec, catalogue)
    ordered = [catalogue[c] for c in model.regions_by_rtt(code)]
    if as_json:
        regions = [
            {**_region_json(r), "rtt_ms": round(model.rtt(code, r.code) * 1000, 1)} for r in ordered
        ]
        print(json.dumps({"from": code, "model": spec.model, "regions": regions}, indent=2))
        return EXIT_OK
    rows = [
        (
            r.code,
            r.city,
            f"{model.rtt(code, r.code) * 1000:.1f}",
            "deprecated" if r.deprecated else "current",
        )
        for r in ordered
    ]
    print(f"modelled round trips from {code} ({spec.model} model, docs/latency-model.md)")
    print(render_table(["code", "city", "rtt_ms", "status"], rows))
    return EXIT_OK


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return int(text)


def region_list(text: str) -> tuple[str, ...]:
    codes = tuple(dict.fromkeys(c.strip().lower() for c in text.split(",") if c.strip()))
    known = default_catalogue().codes()
    unknown = [c for c in codes if c not in known]
    if not codes or unknown:
        what = ", ".join(unknown) if unknown else "none given"
        raise argparse.ArgumentTypeError(
            f"unknown region code(s): {what} (see `edge regions`); e.g. --pops lhr,fra"
        )
    return codes


def with_pops(config: EdgeConfig, pops: tuple[str, ...] | None) -> EdgeConfig:
    """The configuration with this node's PoPs (``--pops``) in place of ``edge.pops``."""
    if not pops:
        return config
    return config.model_copy(update={"edge": config.edge.model_copy(update={"pops": pops})})


def cmd_serve(args: argparse.Namespace, serve_argv: Sequence[str] = ()) -> int:
    from edge.runtime.server import EdgeDaemon, ServeOptions

    configure_logging(args.log_level, args.log_format)
    catalogue = default_catalogue()
    config = load_config(args.config, catalogue) if args.config else default_config(catalogue)
    config = with_pops(config, args.pops)
    store_url = _store_url(args.store, config)
    options = ServeOptions(
        config_path=args.config,
        state_dir=args.state_dir or default_state_dir(),
        api_listen=args.api or config.api.listen,
        drain_timeout=config.drain_timeout if args.drain_timeout is None else args.drain_timeout,
        store_url=store_url,
        node=args.node,
        reuse_port=args.node is not None or args.workers > 1,
        workers=args.workers,
        worker=args.worker,
        ready_fd=args.ready_fd,
    )
    _validate_api_address(options.api_listen)
    if args.worker is not None:
        from edge.cluster.workers import die_with_supervisor

        die_with_supervisor()
    if args.workers > 1 and args.worker is None:
        from edge.cluster.workers import Supervisor
        from edge.runtime.statedir import prepare_state_dir

        prepare_state_dir(options.state_dir)
        return Supervisor(serve_argv, args.workers, options.state_dir).run()
    import uvloop

    daemon = EdgeDaemon(config, options, catalogue)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(daemon.run())
    return EXIT_OK


def _store_url(flag: str | None, config: EdgeConfig) -> str | None:
    if flag is None:
        return config.store.url
    from edge.config.model import StoreSpec

    try:
        return StoreSpec(url=flag).url
    except ValueError:
        raise ConfigError(
            f"--store {flag!r}: must be a postgresql:// URL (leave it out for SQLite)"
        ) from None


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply (or with --check, report) the schema migrations of the configured store."""
    from edge.store.migrate_cli import migrate_store

    catalogue = default_catalogue()
    config = load_config(args.config, catalogue) if args.config else default_config(catalogue)
    url = _store_url(args.store, config)
    print(migrate_store(url, args.state_dir or default_state_dir(), check=args.check))
    return EXIT_OK


def _validate_api_address(address: str) -> None:
    from edge.config.types import split_host_port

    try:
        split_host_port(address)
    except ValueError as exc:
        raise ConfigError(f"--api {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        if args.command == "check-config":
            return cmd_check_config(args.file)
        if args.command == "regions":
            return cmd_regions(args)
        if args.command == "migrate":
            return cmd_migrate(args)
        return cmd_serve(args, argv)
    except ConfigError as exc:
        details = "; ".join(exc.problems) if exc.problems != (exc.message,) else ""
        print(f"edge: error: {exc.message}{': ' + details if details else ''}", file=sys.stderr)
        return EXIT_USAGE
    except EdgeError as exc:
        print(f"edge: error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
