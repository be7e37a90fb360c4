"""fly-replay: an app's instruction to deliver a request again, somewhere else.

A machine answers ``fly-replay: region=lhr`` (header form) or a body of content type
``application/vnd.fly.replay+json`` (JSON form); the edge discards that answer and
sends the original request to the target named. This module holds the rules as plain
functions over immutable values: parsing both forms into a ``ReplayInstruction`` (an
invalid one raises ``InvalidReplay``: the platform's PA03), the limits (the replay
buffer, PA01; at most ``MAX_REPLAYS`` per request, PA02), where the replayed request
goes (``replay_route``, and ``fallback_route`` when the target cannot be reached), and
the headers the replayed request carries (``fly-replay-src``, ``fly-replay-failed``).
The relay (``edge.dataplane.http_replay``) does the I/O.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Final, Literal

from edge.core.error_codes import ErrorCode

MAX_REPLAYS: Final = 10  # the platform's limit of chained replays
MAX_JSON_BODY: Final = 64 * 1024  # a JSON instruction larger than this is invalid
JSON_CONTENT_TYPE: Final = b"application/vnd.fly.replay+json"
MIN_CACHE_TTL: Final = 10.0  # seconds: fly-replay-cache-ttl-secs below this is raised to it

Fallback = Literal["force_self", "prefer_self"]
FailReason = Literal["timeout", "retries_exhausted", "no_candidate"]
_FIELDS: Final = frozenset(
    {"region", "instance", "prefer_instance", "app", "elsewhere", "state", "timeout", "fallback"}
)
_TOKEN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)?$")


class InvalidReplay(ValueError):
    """The app's fly-replay instruction cannot be followed (PA03)."""

    code = ErrorCode.PA03


@dataclass(frozen=True, slots=True)
class ReplayTransform:
    """JSON form only: how the replayed request differs from the original."""

    path: str | None = None
    delete_headers: tuple[str, ...] = ()  # lowercased names
    set_headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ReplayInstruction:
    """One parsed fly-replay answer."""

    regions: tuple[str, ...] = ()  # codes or aliases, in order; "any" last means "prefer"
    instance: str | None = None
    prefer_instance: str | None = None
    app: str | None = None
    elsewhere: bool = False
    state: str | None = None
    timeout: float | None = None  # seconds to reach the target, then the fallback applies
    fallback: Fallback | None = None
    transform: ReplayTransform | None = None
    cache_prefix: str | None = None  # fly-replay-cache (path form), or the JSON cache.prefix
    cache_ttl: float = MIN_CACHE_TTL
    cache_invalidate: bool = False  # drop the cache entry that routed this request here

    @property
    def forced_regions(self) -> bool:
        """A region list is a force unless it ends in ``any``."""
        return bool(self.regions) and self.regions[-1] != "any"

    @property
    def target_regions(self) -> tuple[str, ...]:
        return self.regions[:-1] if self.regions and self.regions[-1] == "any" else self.regions

    def describe(self) -> str:
        """For logs and explanations: ``region=lhr;elsewhere=true``."""
        parts = []
        if self.regions:
            parts.append("region=" + ",".join(self.regions))
        for name in ("instance", "prefer_instance", "app", "state", "fallback"):
            value = getattr(self, name)
            if value:
                parts.append(f"{name}={value}")
        if self.elsewhere:
            parts.append("elsewhere=true")
        if self.timeout is not None:
            parts.append(f"timeout={self.timeout:g}s")
        return ";".join(parts) or "(no target: any machine)"


# --- parsing -------------------------------------------------------------------------------


def parse_header(value: bytes) -> ReplayInstruction:
    """The header form: ``region=lhr;state=x`` or ``region="ams,fra,any";elsewhere=true``."""
    try:
        text = value.decode("ascii").strip()
    except UnicodeDecodeError:
        raise InvalidReplay("fly-replay is not ASCII") from None
    fields: dict[str, str] = {}
    for item in _split_fields(text):
        name, eq, raw = item.partition("=")
        name = name.strip().lower()
        if not eq or not name:
            raise InvalidReplay(f"fly-replay field {item.strip()!r} is not name=value")
        if name not in _FIELDS:
            raise InvalidReplay(f"fly-replay has an unknown field {name!r}")
        fields[name] = _unquote(raw.strip())
    return _instruction(fields)


def _split_fields(text: str) -> list[str]:
    """``;``-separated fields; a quoted value may hold commas (a region list)."""
    items: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == ";" and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    if quoted:
        raise InvalidReplay("fly-replay has an unterminated quote")
    items.append("".join(current))
    return [item for item in items if item.strip()]


def _unquote(raw: str) -> str:
    return raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] == '"' else raw


def _instruction(fields: dict[str, str]) -> ReplayInstruction:
    region = fields.get("region", "")
    if "," in region and not _was_list_ok(region):
        raise InvalidReplay(f"fly-replay region list {region!r} has an empty entry")
    elsewhere = fields.get("elsewhere", "false").lower()
    if elsewhere not in ("true", "false"):
        raise InvalidReplay(f"fly-replay elsewhere must be true or false, not {elsewhere!r}")
    fallback = fields.get("fallback")
    if fallback is not None and fallback not in ("force_self", "prefer_self"):
        raise InvalidReplay(f"fly-replay fallback {fallback!r}: use force_self or prefer_self")
    timeout = fields.get("timeout")
    instruction = ReplayInstruction(
        regions=_regions(region),
        instance=_token(fields, "instance"),
        prefer_instance=_token(fields, "prefer_instance"),
        app=_token(fields, "app"),
        elsewhere=elsewhere == "true",
        state=fields.get("state") or None,
        timeout=None if timeout is None else parse_duration(timeout),
        fallback=fallback,  # type: ignore[arg-type]  # checked just above
    )
    return instruction


def _was_list_ok(region: str) -> bool:
    return all(part.strip() for part in region.split(","))


def _regions(value: str) -> tuple[str, ...]:
    regions: list[str] = []
    for part in value.split(","):
        code = part.strip().lower()
        if not code:
            continue
        if not _TOKEN.match(code):
            raise InvalidReplay(f"fly-replay region {code!r} is not a region code or alias")
        if code not in regions:
            regions.append(code)
    return tuple(regions)


def _token(fields: dict[str, str], name: str) -> str | None:
    value = fields.get(name, "").strip().lower()
    if not value:
        return None
    if not _TOKEN.match(value):
        raise InvalidReplay(f"fly-replay {name} {value!r} is not a valid id or name")
    return value


def parse_duration(text: str) -> float:
    """``10s``, ``800ms``, ``1m``; a bare number is seconds."""
    match = _DURATION.match(text.strip().lower())
    if match is None:
        raise InvalidReplay(f"fly-replay timeout {text!r}: use a duration like 800ms or 10s")
    number, unit = float(match.group(1)), match.group(2) or "s"
    return number / 1000 if unit == "ms" else number * 60 if unit == "m" else number


def parse_json(body: bytes) -> ReplayInstruction:
    """The JSON form: the header's fields plus ``transform`` and ``cache``."""
    if len(body) > MAX_JSON_BODY:
        raise InvalidReplay(f"the replay JSON body is over {MAX_JSON_BODY} bytes")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidReplay(f"the replay JSON body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidReplay("the replay JSON body must be an object")
    unknown = set(doc) - _FIELDS - {"transform", "cache", "allow_bypass"}
    if unknown:
        raise InvalidReplay(f"the replay JSON has unknown field(s) {', '.join(sorted(unknown))}")
    fields = {name: _json_scalar(name, doc[name]) for name in _FIELDS if name in doc}
    base = _instruction(fields)
    transform = _transform(doc.get("transform"))
    cache = doc.get("cache")
    if isinstance(cache, dict) and cache.get("invalidate") is True:
        return _replace(base, transform=transform, cache_invalidate=True)
    prefix, ttl = _json_cache(cache)
    return _replace(base, transform=transform, cache_prefix=prefix, cache_ttl=ttl)


def _json_scalar(name: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list) and name == "region":
        if not all(isinstance(v, str) for v in value):
            raise InvalidReplay("the replay JSON region list must hold strings")
        return ",".join(value)
    if isinstance(value, str | int | float):
        return str(value)
    raise InvalidReplay(f"the replay JSON field {name!r} must be a string")


def _transform(value: object) -> ReplayTransform | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"path", "delete_headers", "set_headers"}:
        raise InvalidReplay("transform takes path, delete_headers and set_headers")
    path = value.get("path")
    if path is not None and (not isinstance(path, str) or not path.startswith("/") or _bad(path)):
        raise InvalidReplay("transform.path must be a path starting with '/'")
    deletes = value.get("delete_headers", [])
    if not isinstance(deletes, list) or not all(_header_name(n) for n in deletes):
        raise InvalidReplay("transform.delete_headers must be a list of header names")
    sets = value.get("set_headers", [])
    pairs: list[tuple[str, str]] = []
    for item in sets if isinstance(sets, list) else [None]:
        if not isinstance(item, dict) or not _header_name(item.get("name")):
            raise InvalidReplay("transform.set_headers must be a list of {name, value}")
        text = str(item.get("value", ""))
        if _bad(text):
            raise InvalidReplay("transform.set_headers values must not hold line breaks")
        pairs.append((str(item["name"]), text))
    return ReplayTransform(path, tuple(str(n).lower() for n in deletes), tuple(pairs))


def _header_name(name: object) -> bool:
    return isinstance(name, str) and re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name) is not None


def _bad(text: str) -> bool:
    return (
        any(c in text for c in "\r\n\0 ") if text.startswith("/") else "\r" in text or "\n" in text
    )


def _json_cache(value: object) -> tuple[str | None, float]:
    if value is None:
        return None, MIN_CACHE_TTL
    if not isinstance(value, dict) or not isinstance(value.get("prefix"), str):
        raise InvalidReplay(
            "cache must be an object with a prefix (and ttl in seconds), or {invalidate: true}"
        )
    ttl = value.get("ttl", MIN_CACHE_TTL)
    if not isinstance(ttl, int | float) or isinstance(ttl, bool):
        raise InvalidReplay("cache.ttl must be a number of seconds")
    return str(value["prefix"]), max(float(ttl), MIN_CACHE_TTL)


def _replace(base: ReplayInstruction, **changes: object) -> ReplayInstruction:
    import dataclasses

    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def with_cache_headers(
    instruction: ReplayInstruction, cache: bytes | None, ttl: bytes | None
) -> ReplayInstruction:
    """The header form's ``fly-replay-cache`` / ``fly-replay-cache-ttl-secs`` response lines."""
    if not cache:
        return instruction
    if cache.strip().lower() == b"invalidate":
        return _replace(instruction, cache_invalidate=True)
    try:
        seconds = float(ttl) if ttl else MIN_CACHE_TTL
    except ValueError:
        raise InvalidReplay("fly-replay-cache-ttl-secs must be a number of seconds") from None
    prefix = cache.decode("latin-1").strip()
    return _replace(instruction, cache_prefix=prefix, cache_ttl=max(seconds, MIN_CACHE_TTL))


# --- what to do with it ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Refusal:
    """The replay cannot happen: the client gets this status and error code."""

    status: int
    code: ErrorCode
    text: str


def check_replay(
    replays_done: int, body_complete: bool, is_fallback: bool, buffer_limit: int
) -> Refusal | None:
    """Whether one more replay of this request may happen (None: yes)."""
    if is_fallback:
        return Refusal(502, ErrorCode.PA03, "a fallback request cannot be replayed again")
    if replays_done >= MAX_REPLAYS:
        return Refusal(
            502, ErrorCode.PA02, f"the request was replayed more than {MAX_REPLAYS} times"
        )
    if not body_complete:
        return Refusal(
            502,
            ErrorCode.PA01,
            f"the request body is over the replay buffer ({buffer_limit} bytes, "
            "http.replay_buffer in edge.yaml) and was streamed, so it cannot be replayed",
        )
    return None


@dataclass(frozen=True, slots=True)
class ReplayRoute:
    """Where a replayed request goes, as routing takes it (see ``edge.core.route_headers``)."""

    app: str  # the app to deliver to (the replaying one unless the app named another)
    source_app: str  # the app that replayed it (a target app must be of the same org)
    regions: tuple[str, ...] = ()  # codes or aliases, not expanded yet
    forced: bool = False
    force_instance: str | None = None
    prefer_instance: str | None = None
    exclude: frozenset[str] = frozenset()
    why: str = ""  # for explanations: "replay from m1: region=lhr"


def replay_route(
    instruction: ReplayInstruction, source_machine: str, source_app: str
) -> ReplayRoute:
    """The route of the request replayed by ``source_machine`` of ``source_app``."""
    return ReplayRoute(
        app=instruction.app or source_app,
        source_app=source_app,
        regions=instruction.target_regions,
        forced=instruction.forced_regions,
        force_instance=instruction.instance,
        prefer_instance=instruction.prefer_instance,
        exclude=frozenset({source_machine}) if instruction.elsewhere else frozenset(),
        why=f"replay from {source_machine}: {instruction.describe()}",
    )


def fallback_route(
    instruction: ReplayInstruction, source_machine: str, source_app: str
) -> ReplayRoute | None:
    """Back to the replaying machine (``force_self``) or preferably it; None: no fallback."""
    if instruction.fallback is None:
        return None
    forced = instruction.fallback == "force_self"
    return ReplayRoute(
        app=source_app,
        source_app=source_app,
        force_instance=source_machine if forced else None,
        prefer_instance=None if forced else source_machine,
        why=f"replay fallback ({instruction.fallback}) to {source_machine}",
    )


def replay_src(instance: str, region: str, t_us: int, state: str | None) -> bytes:
    """The ``fly-replay-src`` value of a replayed request."""
    value = f"instance={instance};region={region};t={t_us}"
    if state:
        value += f";state={state}"
    return value.encode("latin-1", "replace")


def replay_failed(
    instruction: ReplayInstruction, app: str, source: str, reason: FailReason, elapsed_ms: int
) -> bytes:
    """The ``fly-replay-failed`` value of a fallback request: what was asked, and why not."""
    return (
        f"instance={instruction.instance or ''};app={app};"
        f"region={','.join(instruction.regions)};replay_source={source};"
        f"reason={reason};elapsed_ms={elapsed_ms}"
    ).encode("latin-1", "replace")
