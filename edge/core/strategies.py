"""Who is a candidate, and how one endpoint is picked: the balancing strategies.

``edge.core.routing.decide`` applies the client's wishes (instance, regions) and calls
in here. A candidate is a started machine in rotation (admin ''), below its hard
limit, not already tried and, outside Envoy's panic mode, healthy and not ejected.
Every picker gets a non-empty candidate list and returns one of its members.

- nearest (the platform's rule, used within one region): endpoints below the soft
  limit first, at random; else the least loaded of the soft band.
- weighted_latency: probability proportional to weight / RTT^latency_exponent, among
  the endpoints below the soft limit (all candidates when none is).
- least_connections: the lowest (active + 1) / weight (Envoy's weighted least-request
  with bias 1; with equal weights simply the fewest active), ties to the nearer, then
  at random.
- p2c_peak_ewma: two at random, keep the cheaper by peak-EWMA RTT x (active + 1) / weight
  (Finagle, linkerd2). See ``edge.core.latency.peak_ewma`` for the estimate.
- maglev: consistent hashing of the client key (``edge.core.maglev``).

Over a whole service, p2c and weighted_latency first try rejection sampling from the
started endpoints (``sample_*``), which gives the same distribution without listing
every candidate; maglev walks its table. Only nearest-style region walks and
least_connections scan, and the walk scans one region at a time.

Slow start (HAProxy ``slowstart``, Envoy ``slow_start_config`` with aggression 1): for
``spec.slow_start`` seconds after ``stats.ready_since`` an endpoint's weight ramps
linearly from 10% to 100%. Every strategy except maglev uses that effective weight;
in nearest it is the probability of being taken among equally good endpoints.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import random
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, NamedTuple, TypeAlias

from edge.core.latency import EWMA_DEFAULT_RTT, peak_ewma
from edge.core.maglev import pick_maglev, pick_maglev_where

if TYPE_CHECKING:
    from edge.core.latency import LatencyModel
    from edge.core.routing import Endpoint, EndpointStats, Reason, RouteRequest, ServiceRoutes

SLOW_START_MIN = 0.1  # Envoy's min_weight_percent default, so a new machine still gets some
_SAMPLE_TRIES = 8  # draws before a sampler gives up and the caller scans every endpoint


class Situation(NamedTuple):
    """Everything one decision needs. A NamedTuple because it is built on every
    connection, and a frozen dataclass costs about three times as much to create."""

    service: ServiceRoutes
    request: RouteRequest
    model: LatencyModel
    now: float
    rng: random.Random
    select: Select  # the candidates among some endpoints


Select: TypeAlias = "Callable[[Iterable[Endpoint]], list[Endpoint]]"
Routed: TypeAlias = "tuple[Endpoint | None, Reason, str]"  # endpoint, reason, detail
Picker: TypeAlias = "Callable[[Situation, list[Endpoint]], Endpoint]"


# --- who is a candidate ----------------------------------------------------------------


def in_panic(service: ServiceRoutes, now: float) -> bool:
    """Envoy's panic mode: too few healthy machines, so health is ignored.

    Healthy means passing checks and not ejected; machines in maint or drain count
    neither way, since an operator took them out on purpose.
    """
    threshold = service.spec.panic_threshold
    started = service.started_stats
    if threshold <= 0.0 or not started:
        return False
    # Stop counting as soon as enough are healthy (enough of all started machines is
    # enough of those in rotation): the usual case costs a partial scan of bare stats.
    enough = threshold * len(started)
    healthy = 0
    for stats in started:
        if stats.healthy and stats.ejected_until <= now and not stats.admin:
            healthy += 1
            if healthy >= enough:
                return False
    in_rotation = sum(1 for stats in started if not stats.admin)
    return in_rotation > 0 and healthy < threshold * in_rotation


def candidate_filter(
    service: ServiceRoutes, exclude: frozenset[str], now: float, panic: bool
) -> Select:
    """The endpoints of a group that are candidates; in panic, health and ejection don't count."""
    hard = service.spec.concurrency.hard_limit
    limit = hard if hard is not None else 1 << 62

    def select(endpoints: Iterable[Endpoint]) -> list[Endpoint]:
        # One comprehension, no call per endpoint: this is the loop every decision runs.
        return [
            ep
            for ep in endpoints
            if ep.started
            and (stats := ep.stats).active < limit
            and not stats.admin
            and (panic or (stats.healthy and stats.ejected_until <= now))
            and ep.machine_id not in exclude
        ]

    return select


def is_candidate(select: Select, endpoint: Endpoint) -> bool:
    return bool(select((endpoint,)))


def why_not(
    ep: Endpoint | None, service: ServiceRoutes, exclude: frozenset[str], now: float
) -> str:
    """Why an endpoint is not a candidate (outside panic mode), '' when it is one."""
    if ep is None:
        return "no such machine"
    stats = ep.stats
    if not ep.started:
        return "not started"
    if stats.admin:
        return "in maintenance" if stats.admin == "maint" else "draining"
    if ep.machine_id in exclude:
        return "already tried"
    hard = service.spec.concurrency.hard_limit
    if hard is not None and stats.active >= hard:
        return "at hard limit"
    if not stats.healthy:
        return "failing health checks"
    if stats.ejected_until > now:
        return f"ejected for {stats.ejected_until - now:.1f}s"
    return ""


def no_candidate_summary(service: ServiceRoutes, exclude: frozenset[str], now: float) -> str:
    """A summary like 'no candidate among 3 started machines: 2 at hard limit, 1 ...'."""
    if not service.started:
        return f"no started machines for {service.app}"
    counts: dict[str, int] = {}
    for ep in service.started:
        why = why_not(ep, service, exclude, now) or "available"
        why = "ejected" if why.startswith("ejected") else why
        counts[why] = counts.get(why, 0) + 1
    parts = ", ".join(f"{n} {why}" for why, n in sorted(counts.items()))
    return f"no candidate among {len(service.started)} started machines: {parts}"


# --- picking one ----------------------------------------------------------------------


def slow_start_factor(stats: EndpointStats, now: float, window: float) -> float:
    """1.0, or between 0.1 and 1.0 while the endpoint is ramping up after becoming ready."""
    if window <= 0.0:
        return 1.0
    age = now - stats.ready_since
    if age >= window:
        return 1.0
    if age <= 0.0:
        return SLOW_START_MIN
    return SLOW_START_MIN + (1.0 - SLOW_START_MIN) * age / window


def effective_weight(endpoint: Endpoint, now: float, window: float) -> float:
    return endpoint.weight * slow_start_factor(endpoint.stats, now, window)


def weighted_choice(s: Situation, endpoints: list[Endpoint]) -> Endpoint:
    """One endpoint at random, in proportion to its effective weight."""
    if len(endpoints) == 1:
        return endpoints[0]
    window = s.service.spec.slow_start
    if window <= 0.0 and s.service.uniform_weight:
        return s.rng.choice(endpoints)  # the common case: no arithmetic at all
    weights = [effective_weight(ep, s.now, window) for ep in endpoints]
    return s.rng.choices(endpoints, weights)[0]


def pick_banded(s: Situation, candidates: list[Endpoint]) -> tuple[Endpoint, bool]:
    """The platform's choice within a region; the flag says the soft band had to be used."""
    soft = s.service.spec.concurrency.soft_limit
    below = [ep for ep in candidates if ep.stats.active < soft]
    if below:
        return weighted_choice(s, below), False
    least = min(ep.stats.active for ep in candidates)
    return weighted_choice(s, [ep for ep in candidates if ep.stats.active == least]), True


def pick_nearest(s: Situation, candidates: list[Endpoint]) -> Endpoint:
    """The nearest region's candidates, then ``pick_banded`` among them."""
    rtts = s.model.matrix[s.request.pop]
    best = min(rtts[ep.region] for ep in candidates)
    return pick_banded(s, [ep for ep in candidates if rtts[ep.region] == best])[0]


def pick_weighted_latency(s: Situation, candidates: list[Endpoint]) -> Endpoint:
    soft = s.service.spec.concurrency.soft_limit
    pool = [ep for ep in candidates if ep.stats.active < soft] or candidates
    closeness = _closeness(s)
    window = s.service.spec.slow_start
    if window <= 0.0 and s.service.uniform_weight:
        weights = [closeness[ep.region] for ep in pool]
    else:
        weights = [effective_weight(ep, s.now, window) * closeness[ep.region] for ep in pool]
    return s.rng.choices(pool, weights)[0]


def _closeness(s: Situation) -> dict[str, float]:
    """1 / RTT^k from the PoP to each of the service's regions: one power per region."""
    rtts = s.model.matrix[s.request.pop]
    exponent = s.service.spec.latency_exponent
    return {region: rtts[region] ** -exponent for region in s.service.started_by_region}


def sample_weighted_latency(s: Situation) -> Endpoint | None:
    """``pick_weighted_latency`` over all candidates without scanning them, usually.

    Rejection sampling: draw from the static weight / RTT^k distribution over the
    started endpoints (cumulative sums kept per PoP), keep the draw if it is a candidate
    below the soft limit, thinned by its slow-start factor. Accepted draws follow the
    exact target distribution; after a few misses (most machines busy or out) return
    None, and the caller scans.
    """
    if not s.service.started:
        return None
    proposal = s.service.memo.proposals.get(s.request.pop)
    if proposal is None:
        closeness = _closeness(s)
        cumulative = list(
            itertools.accumulate(ep.weight * closeness[ep.region] for ep in s.service.started)
        )
        proposal = s.service.memo.proposals[s.request.pop] = (cumulative, cumulative[-1])
    cumulative, total = proposal
    soft = s.service.spec.concurrency.soft_limit
    window = s.service.spec.slow_start
    last = len(cumulative) - 1
    for _ in range(_SAMPLE_TRIES):
        ep = s.service.started[min(last, bisect.bisect(cumulative, s.rng.random() * total))]
        if (
            ep.stats.active < soft
            and is_candidate(s.select, ep)
            and (window <= 0.0 or s.rng.random() < slow_start_factor(ep.stats, s.now, window))
        ):
            return ep
    return None


def pick_least_connections(s: Situation, candidates: list[Endpoint]) -> Endpoint:
    rtts = s.model.matrix[s.request.pop]
    window = s.service.spec.slow_start
    plain = window <= 0.0 and s.service.uniform_weight  # then load is just the count
    best: list[Endpoint] = []
    best_load = best_rtt = math.inf
    for ep in candidates:
        load = (
            ep.stats.active
            if plain
            else (ep.stats.active + 1) / effective_weight(ep, s.now, window)
        )
        rtt = rtts[ep.region]
        if load < best_load or (load == best_load and rtt < best_rtt):
            best, best_load, best_rtt = [ep], load, rtt
        elif load == best_load and rtt == best_rtt:
            best.append(ep)
    return best[0] if len(best) == 1 else s.rng.choice(best)


def p2c_cost(endpoint: Endpoint, rtt_from_pop: float, now: float, window: float) -> float:
    # Unmeasured machines get at least linkerd2's 30 ms, and never less than the model's
    # RTT, so a far region is not mistaken for a near one before it has been measured.
    prior = max(EWMA_DEFAULT_RTT, rtt_from_pop)
    stats = endpoint.stats
    weight = effective_weight(endpoint, now, window)
    return peak_ewma(stats, now, prior) * (stats.active + 1) / weight


def pick_p2c_peak_ewma(s: Situation, candidates: list[Endpoint]) -> Endpoint:
    count = len(candidates)
    if count == 1:
        return candidates[0]
    first = s.rng.randrange(count)
    second = s.rng.randrange(count - 1)
    second += second >= first  # two distinct indices without building a sample
    return _cheaper(s, candidates[first], candidates[second])


def sample_p2c_peak_ewma(s: Situation) -> Endpoint | None:
    """``pick_p2c_peak_ewma`` over all candidates without scanning them, usually.

    Two distinct candidates drawn by rejection from the started endpoints are two
    uniform draws from the candidates; None after a few misses, and the caller scans.
    """
    started = s.service.started
    if not started:
        return None
    drawn: list[Endpoint] = []
    for _ in range(2 * _SAMPLE_TRIES):
        ep = started[s.rng.randrange(len(started))]
        if (not drawn or ep is not drawn[0]) and is_candidate(s.select, ep):
            drawn.append(ep)
            if len(drawn) == 2:
                return _cheaper(s, drawn[0], drawn[1])
    return None


def _cheaper(s: Situation, a: Endpoint, b: Endpoint) -> Endpoint:
    rtts = s.model.matrix[s.request.pop]
    window = s.service.spec.slow_start
    cost_a = p2c_cost(a, rtts[a.region], s.now, window)
    cost_b = p2c_cost(b, rtts[b.region], s.now, window)
    return a if cost_a <= cost_b else b


def _pick_maglev(s: Situation, candidates: list[Endpoint]) -> Endpoint:
    return pick_maglev(s.service, s.request.client_key, candidates)


PICKERS: dict[str, Picker] = {
    "nearest": pick_nearest,
    "weighted_latency": pick_weighted_latency,
    "least_connections": pick_least_connections,
    "p2c_peak_ewma": pick_p2c_peak_ewma,
    "maglev": _pick_maglev,
}


# --- where to look for candidates --------------------------------------------------------


def pick_in_region(s: Situation, region: str) -> Endpoint | None:
    """The strategy's choice among the candidates of one region (prefer/force region)."""
    candidates = s.select(s.service.started_by_region.get(region, ()))
    if not candidates:
        return None
    return PICKERS[s.service.spec.strategy](s, candidates)


def pick_anywhere(s: Situation) -> Routed:
    """The strategy's choice among every candidate of the service."""
    strategy = s.service.spec.strategy
    if strategy == "nearest":
        return walk_nearest(s)
    sampled: Endpoint | None = None
    # Where the strategy allows, find candidates without scanning every endpoint.
    if strategy == "maglev":
        accept = functools.partial(is_candidate, s.select)
        return pick_maglev_where(s.service, s.request.client_key, accept), "maglev", ""
    if strategy == "p2c_peak_ewma":
        sampled = sample_p2c_peak_ewma(s)
    elif strategy == "weighted_latency":
        sampled = sample_weighted_latency(s)
    if sampled is not None:
        return sampled, strategy, ""
    candidates = s.select(s.service.started)
    if not candidates:
        return None, "no_candidate", ""
    return PICKERS[strategy](s, candidates), strategy, ""


def walk_nearest(s: Situation) -> Routed:
    """Regions nearest first; leave a region only when none of its machines can take it.

    Only this service's own region groups are looked at, so the cost depends on this
    app's regions and machines, never on the number of apps.
    """
    groups = s.service.started_by_region
    home: str | None = None  # the nearest region with any started machine
    remaining = len(groups)
    for region in s.model.regions_by_rtt(s.request.pop):
        group = groups.get(region)
        if group is None:
            continue
        if home is None:
            home = region
        candidates = s.select(group)
        if candidates:
            chosen, spilled = pick_banded(s, candidates)
            if region != home:
                return chosen, "cross_region", f"no machine in {home} can take it"
            return chosen, "spill_over_soft" if spilled else "nearest", ""
        remaining -= 1
        if not remaining:
            break
    return None, "no_candidate", ""
