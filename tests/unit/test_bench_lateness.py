"""The end-to-end benchmark reads timer lateness from the journey service's histogram: a
quantile is the upper bound of the bucket that holds it, never a value the buckets cannot
show."""

from __future__ import annotations

from journeyman.bench.e2e import _bucket_quantile


def test_quantile_is_the_bound_of_the_bucket_holding_it() -> None:
    cumulative = {0.01: 0.0, 0.1: 40.0, 0.5: 98.0, 1.0: 100.0, float("inf"): 100.0}
    assert _bucket_quantile(cumulative, 0.3) == 0.1
    assert _bucket_quantile(cumulative, 0.5) == 0.5
    assert _bucket_quantile(cumulative, 0.99) == 1.0


def test_beyond_the_last_bound_says_infinity_and_no_samples_say_nothing() -> None:
    assert _bucket_quantile({1.0: 5.0, float("inf"): 10.0}, 0.99) == float("inf")
    assert _bucket_quantile({1.0: 0.0, float("inf"): 0.0}, 0.5) is None
