"""Jitter: the extra delay one request or connection gets on a simulated path.

Real round trips are not constant: queues in routers and hosts add a little most of
the time and a lot now and then, so a path's p99 sits well above its p50. The data
plane adds ``sample`` to the modelled RTT of each request (HTTP) or connection (raw
TCP), through the same simulated-delay mechanism that carries the RTT itself.
"""

from __future__ import annotations

import math
import random

from edge.config.model import JitterSpec


def sample(spec: JitterSpec, rng: random.Random) -> float:
    """One draw of the added delay, seconds (never negative)."""
    if spec.distribution == "lognormal":
        assert spec.median is not None and spec.sigma is not None
        return rng.lognormvariate(math.log(spec.median), spec.sigma)
    if spec.distribution == "normal":
        assert spec.mean is not None and spec.stddev is not None
        return max(0.0, rng.gauss(spec.mean, spec.stddev))
    return 0.0


def quantile(spec: JitterSpec, q: float) -> float:
    """The ``q`` quantile of the added delay (0 < q < 1), seconds: for docs and tests."""
    if spec.distribution == "lognormal":
        assert spec.median is not None and spec.sigma is not None
        return spec.median * math.exp(spec.sigma * _normal_quantile(q))
    if spec.distribution == "normal":
        assert spec.mean is not None and spec.stddev is not None
        return max(0.0, spec.mean + spec.stddev * _normal_quantile(q))
    return 0.0


def _normal_quantile(q: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(q)
