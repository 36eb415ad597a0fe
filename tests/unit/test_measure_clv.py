"""Predictive CLV: fitted on customers simulated from known BG/NBD and Gamma-Gamma parameters,
the maximum-likelihood fit recovers them roughly, and its predictions behave as the model says
(more recent, more frequent buyers are worth more)."""

from __future__ import annotations

import numpy as np
import pytest

from services.profile.clv import BgNbd, NotEnoughData, fit_bgnbd, fit_gamma_gamma, forecast

TRUE_BGNBD = BgNbd(r=0.8, alpha=40.0, a=1.6, b=4.0)  # alpha in days
TRUE_GG = (6.0, 4.0, 15.0)  # p, q, gamma


def simulate(customers: int, seed: int) -> tuple[np.ndarray, ...]:
    """Frequency, recency, age (days) and mean repeat-order value of simulated customers."""
    rng = np.random.default_rng(seed)
    m = TRUE_BGNBD
    rates = rng.gamma(m.r, 1 / m.alpha, customers)
    dropout = rng.beta(m.a, m.b, customers)
    ages = rng.uniform(60, 720, customers)
    p, q, gamma = TRUE_GG
    nus = rng.gamma(q, 1 / gamma, customers)
    freq, rec, mon = np.zeros(customers), np.zeros(customers), np.zeros(customers)
    for i in range(customers):
        t, orders = 0.0, []
        while True:
            t += rng.exponential(1 / rates[i])
            if t > ages[i]:
                break
            orders.append(t)
            if rng.random() < dropout[i]:
                break
        freq[i] = len(orders)
        rec[i] = orders[-1] if orders else 0.0
        if orders:
            mon[i] = rng.gamma(p, 1 / nus[i], len(orders)).mean()
    return freq, rec, ages, mon


def test_bgnbd_recovers_the_parameters_it_was_simulated_with() -> None:
    freq, rec, age, _ = simulate(6000, seed=7)
    fitted = fit_bgnbd(freq, rec, age)
    assert fitted.r == pytest.approx(TRUE_BGNBD.r, rel=0.15)
    assert fitted.alpha == pytest.approx(TRUE_BGNBD.alpha, rel=0.2)
    assert fitted.a == pytest.approx(TRUE_BGNBD.a, rel=0.3)
    assert fitted.b == pytest.approx(TRUE_BGNBD.b, rel=0.3)


def test_gamma_gamma_recovers_the_mean_order_value() -> None:
    freq, _, _, mon = simulate(6000, seed=11)
    gg = fit_gamma_gamma(freq, mon)
    p, q, gamma = TRUE_GG
    # p, q and gamma trade off against each other; the population mean order value p*gamma/(q-1)
    # is what the model is used for, and it is identified well.
    assert gg.p * gg.gamma / (gg.q - 1) == pytest.approx(p * gamma / (q - 1), rel=0.15)
    assert gg.p == pytest.approx(p, rel=0.25)


def test_forecast_ranks_recent_frequent_buyers_above_lapsed_ones() -> None:
    freq, rec, age, mon = simulate(3000, seed=3)
    result = forecast(freq, rec, age, mon, horizon_days=365)
    model = result.bgnbd
    # Same history length: 5 repeat orders with the last one yesterday vs a year ago.
    recent, lapsed = model.expected_orders(365, [5, 5], [399, 30], [400, 400])
    assert recent > lapsed > 0
    alive = model.probability_alive([0, 5, 5], [0, 399, 30], [400, 400, 400])
    assert alive[0] == 1.0  # no repeat order yet: BG/NBD cannot have seen a drop-out
    assert alive[1] > alive[2]
    summary = result.summary()
    assert summary["customers"] == 3000
    assert summary["predicted_clv_mean"] > 0


def test_too_little_data_is_refused_with_a_reason() -> None:
    with pytest.raises(NotEnoughData, match="at least 10"):
        fit_bgnbd([1, 0], [3, 0], [10, 10])


def test_small_awkward_shops_fit_without_numerical_warnings() -> None:
    """Far from the optimum the likelihoods overflow; the fit must treat that as unlikely, not
    fail (warnings are errors in the tests)."""
    for seed in range(12):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(10, 80))
        x = rng.integers(0, 5, n).astype(float)
        x[0] = 1.0
        age = rng.uniform(1, 300, n)
        recency = np.where(x > 0, rng.uniform(0, 1, n) * age, 0.0)
        value = np.where(x > 0, rng.uniform(5, 100, n), 0.0)
        result = forecast(x, recency, age, value, horizon_days=90)
        assert np.isfinite(result.expected_orders).all()
        assert (result.expected_value > 0).all()
