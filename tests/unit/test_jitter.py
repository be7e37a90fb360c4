"""Jitter on simulated paths: the distributions (seeded), their quantiles, the config."""

from __future__ import annotations

import random
import statistics
from typing import Any

import pytest

from edge.config.load import parse_config
from edge.config.model import JitterSpec
from edge.config.regions import default_catalogue
from edge.core.jitter import quantile, sample
from edge.errors import ConfigError

LOGNORMAL = JitterSpec(distribution="lognormal", median="2ms", sigma=0.8)
NORMAL = JitterSpec(distribution="normal", mean="3ms", stddev="1ms")


def draws(spec: JitterSpec, n: int = 20_000, seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    return sorted(sample(spec, rng) for _ in range(n))


def percentile(values: list[float], q: float) -> float:
    return values[int(q * (len(values) - 1))]


def test_lognormal_has_its_median_and_a_long_tail() -> None:
    values = draws(LOGNORMAL)
    assert percentile(values, 0.5) == pytest.approx(0.002, rel=0.05)
    assert percentile(values, 0.99) == pytest.approx(quantile(LOGNORMAL, 0.99), rel=0.1)
    assert quantile(LOGNORMAL, 0.99) == pytest.approx(0.002 * 6.43, rel=0.01)  # e^(2.326*0.8)
    assert percentile(values, 0.99) > 5 * percentile(values, 0.5)
    assert min(values) > 0


def test_normal_has_its_mean_and_never_goes_negative() -> None:
    values = draws(NORMAL)
    assert statistics.fmean(values) == pytest.approx(0.003, rel=0.03)
    assert percentile(values, 0.99) == pytest.approx(quantile(NORMAL, 0.99), rel=0.05)
    wide = draws(JitterSpec(distribution="normal", mean="1ms", stddev="2ms"))
    assert min(wide) == 0.0


def test_none_adds_nothing() -> None:
    assert draws(JitterSpec(), n=10) == [0.0] * 10
    assert quantile(JitterSpec(), 0.99) == 0.0


def test_a_seed_repeats_the_sequence() -> None:
    assert draws(LOGNORMAL, n=50, seed=3) == draws(LOGNORMAL, n=50, seed=3)
    assert draws(LOGNORMAL, n=50, seed=3) != draws(LOGNORMAL, n=50, seed=4)


def config_problems(jitter: dict[str, Any]) -> tuple[str, ...]:
    data = {"edge": {"pops": ["lhr"], "local_region": "lhr"}, "latency": {"jitter": jitter}}
    with pytest.raises(ConfigError) as info:
        parse_config(data, default_catalogue())
    return info.value.problems


LOG, NORM, PATH = "lognormal", "normal", "latency.jitter"


@pytest.mark.parametrize(
    ("jitter", "problem"),
    [
        ({"distribution": LOG, "median": "2ms"}, f"{PATH}: distribution lognormal needs sigma"),
        (
            {"distribution": NORM, "mean": "2ms", "stddev": "1ms", "sigma": 1},
            f"{PATH}: sigma is not a parameter of distribution normal",
        ),
        ({"distribution": LOG, "median": "0ms", "sigma": 1}, f"{PATH}: a lognormal jitter needs"),
        ({"distribution": NORM, "mean": "1ms", "stddev": "0ms"}, f"{PATH}: a normal jitter needs"),
        ({"distribution": "gamma"}, f"{PATH}.distribution: Input should be"),
        ({"distribution": LOG, "median": "2ms", "sigma": -1}, f"{PATH}.sigma: Input should be"),
        ({"distribution": "none", "spread": 1}, f"{PATH}.spread"),
    ],
)
def test_bad_jitter_config_names_its_yaml_path(jitter: dict[str, Any], problem: str) -> None:
    assert any(p.startswith(problem) for p in config_problems(jitter)), config_problems(jitter)


def test_a_good_jitter_config_parses() -> None:
    data = {
        "edge": {"pops": ["lhr"], "local_region": "lhr", "simulate_latency": True},
        "latency": {
            "jitter": {"distribution": "lognormal", "median": "5ms", "sigma": 1.2, "seed": 9}
        },
    }
    spec = parse_config(data, default_catalogue()).latency.jitter
    assert (spec.median, spec.sigma, spec.seed) == (0.005, 1.2, 9)
