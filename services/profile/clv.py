"""Predictive customer lifetime value: BG/NBD for how many orders a customer will still place
(Fader, Hardie & Lee 2005, "Counting your customers the easy way") and Gamma-Gamma for what
each order will be worth (Fader, Hardie & Lee 2005, "RFM and CLV"), fitted by maximum
likelihood with scipy (bounded L-BFGS-B; about 1.5 s for 20,000 buyers, forecast included).

Why not a library: `lifetimes` has had no release since 0.11.3 in 2020, `btyd` (its fork) is a
2022 beta, and `pymc-marketing` brings PyMC and PyTensor
for a Bayesian fit we do not need. Both likelihoods are a few lines of scipy.

Inputs per customer (time in days): `frequency` = repeat orders (orders - 1), `recency` = days
from the first to the last order, `age` = days from the first order to the end of observation
(T), `monetary` = mean value of the repeat orders. Every step is vectorised over customers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]


def _scipy() -> tuple[Any, Any]:
    """scipy's optimize and special, imported on the first fit: they take a second or two to
    import, which the profile service should not pay at every start."""
    from scipy import optimize, special  # noqa: PLC0415

    return optimize, special


class NotEnoughData(ValueError):
    """Too few customers (or repeat buyers) to fit the model."""


@dataclass(frozen=True)
class BgNbd:
    """Purchase rate ~ Gamma(r, alpha); drop-out after each order with p ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float

    def expected_orders(self, t: float, frequency: ArrayLike, recency: ArrayLike,
                        age: ArrayLike) -> Array:  # fmt: skip
        """Orders each customer is expected to place in the next `t` days."""
        _, special = _scipy()
        x, tx, big_t = _arrays(frequency, recency, age)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + big_t + t))
        first = (a + b + x - 1) / (a - 1)
        second = 1 - ((alpha + big_t) / (alpha + big_t + t)) ** (r + x) * hyp
        result: Array = first * second / self._odds_dead(x, tx, big_t)
        return result

    def probability_alive(self, frequency: ArrayLike, recency: ArrayLike,
                          age: ArrayLike) -> Array:  # fmt: skip
        x, tx, big_t = _arrays(frequency, recency, age)
        result: Array = 1 / self._odds_dead(x, tx, big_t)
        return result

    def _odds_dead(self, x: Array, tx: Array, big_t: Array) -> Array:
        """1 + odds that the customer has dropped out (only after at least one repeat order)."""
        ratio = self.a / np.maximum(self.b + x - 1, 1e-12)
        odds = ratio * ((self.alpha + big_t) / (self.alpha + tx)) ** (self.r + x)
        result: Array = 1 + np.where(x > 0, odds, 0.0)
        return result


def _arrays(*values: ArrayLike) -> tuple[Array, ...]:
    return tuple(np.asarray(v, dtype=np.float64) for v in values)


def bgnbd_log_likelihood(params: ArrayLike, frequency: ArrayLike, recency: ArrayLike,
                         age: ArrayLike) -> Array:  # fmt: skip
    """Each customer's log-likelihood under BG/NBD with params (r, alpha, a, b)."""
    x, tx, big_t = _arrays(frequency, recency, age)
    return _BgNbdData(x, tx, big_t).log_likelihood(np.asarray(params, dtype=np.float64))


class _BgNbdData:
    """The customers, with the terms that depend only on the repeat-order count computed per
    distinct count (a few dozen) instead of per customer: the gamma and beta functions are
    most of a likelihood evaluation's cost."""

    def __init__(self, x: Array, tx: Array, big_t: Array) -> None:
        self.x, self.tx, self.big_t = x, tx, big_t
        self.counts, self.index = np.unique(x, return_inverse=True)
        self.repeat = x > 0

    def log_likelihood(self, params: Array) -> Array:
        _, special = _scipy()
        r, alpha, a, b = params
        ux, x = self.counts, self.x
        a12 = (special.gammaln(r + ux) - special.gammaln(r) + r * np.log(alpha)
               + special.betaln(a, b + ux) - special.betaln(a, b))[self.index]  # fmt: skip
        a3 = -(r + x) * np.log(alpha + self.big_t)
        with np.errstate(divide="ignore", invalid="ignore"):
            a4 = (np.log(a) - np.log(b + ux - 1))[self.index] - (r + x) * np.log(alpha + self.tx)
        a4 = np.where(self.repeat, a4, -np.inf)
        result: Array = a12 + np.logaddexp(a3, a4)
        return result


def fit_bgnbd(frequency: ArrayLike, recency: ArrayLike, age: ArrayLike) -> BgNbd:
    x, tx, big_t = _arrays(frequency, recency, age)
    if len(x) < 10 or not (x > 0).any():
        raise NotEnoughData("BG/NBD needs at least 10 customers, some with repeat orders")
    scale = max(float(big_t.mean()), 1.0)  # fit in units of the mean age: better conditioned
    data = _BgNbdData(x, tx / scale, big_t / scale)

    def negative(log_params: Array) -> float:
        return float(-data.log_likelihood(np.exp(log_params)).sum())

    r, alpha, a, b = np.exp(_minimise(negative, np.zeros(4)))
    return BgNbd(float(r), float(alpha * scale), float(a), float(b))


LOG_BOUND = 12.0  # parameters between e^-12 and e^12: data with no signal for one of them
# (no drop-out seen, say) otherwise sends it to infinity along a flat ridge, slowly.


def _minimise(negative: Any, start: Array) -> Array:
    """L-BFGS-B on bounded log-parameters: a few hundred evaluations at most. Far from the
    optimum the likelihood can overflow: such points count as very unlikely, not as errors."""
    optimize, _ = _scipy()

    def finite(log_params: Array) -> float:
        with np.errstate(all="ignore"):
            value = float(negative(log_params))
        return value if np.isfinite(value) else 1e300

    bounds = [(-LOG_BOUND, LOG_BOUND)] * len(start)
    found = optimize.minimize(finite, start, method="L-BFGS-B", bounds=bounds,
                              options={"maxiter": 500})  # fmt: skip
    result: Array = found.x
    return result


@dataclass(frozen=True)
class GammaGamma:
    """Order value ~ Gamma(p, nu) per customer, nu ~ Gamma(q, gamma) across customers."""

    p: float
    q: float
    gamma: float

    def expected_order_value(self, frequency: ArrayLike, monetary: ArrayLike) -> Array:
        """The mean order value to expect from each customer (population mean if no repeat)."""
        x, m = _arrays(frequency, monetary)
        population = self.p * self.gamma / (self.q - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            own = self.p * (self.gamma + x * m) / (self.p * x + self.q - 1)
        result: Array = np.where(x > 0, own, population)
        return result


def gamma_gamma_log_likelihood(params: ArrayLike, frequency: ArrayLike,
                               monetary: ArrayLike) -> Array:  # fmt: skip
    """Log-likelihood of each repeat buyer's mean order value (x > 0, m > 0)."""
    _, special = _scipy()
    p, q, gamma = np.asarray(params, dtype=np.float64)
    x, m = _arrays(frequency, monetary)
    result: Array = (
        special.gammaln(p * x + q) - special.gammaln(p * x) - special.gammaln(q)
        + q * np.log(gamma) + (p * x - 1) * np.log(m) + p * x * np.log(x)
        - (p * x + q) * np.log(gamma + m * x)
    )  # fmt: skip
    return result


def fit_gamma_gamma(frequency: ArrayLike, monetary: ArrayLike) -> GammaGamma:
    x, m = _arrays(frequency, monetary)
    keep = (x > 0) & (m > 0)
    x, m = x[keep], m[keep]
    if len(x) < 10:
        raise NotEnoughData("Gamma-Gamma needs at least 10 repeat buyers with order values")
    scale = float(m.mean())

    def negative(log_params: Array) -> float:
        p, q, gamma = np.exp(log_params)
        return float(-gamma_gamma_log_likelihood((p, q, gamma), x, m / scale).sum())

    p, q, gamma = np.exp(_minimise(negative, np.log([1.0, 2.0, 1.0])))
    return GammaGamma(float(p), float(q), float(gamma * scale))


@dataclass(frozen=True)
class ClvForecast:
    bgnbd: BgNbd
    gamma_gamma: GammaGamma | None
    horizon_days: float
    customers: int
    expected_orders: Array
    expected_value: Array
    probability_alive: Array

    def summary(self) -> dict[str, Any]:
        clv = self.expected_orders * self.expected_value
        return {
            "model": "BG/NBD + Gamma-Gamma (maximum likelihood)",
            "horizon_days": self.horizon_days,
            "customers": self.customers,
            "parameters": {
                "bgnbd": vars(self.bgnbd),
                "gamma_gamma": vars(self.gamma_gamma) if self.gamma_gamma else None,
            },
            "expected_orders_total": round(float(self.expected_orders.sum()), 2),
            "predicted_clv_mean": round(float(clv.mean()), 2),
            "predicted_clv_total": round(float(clv.sum()), 2),
            "probability_alive_mean": round(float(self.probability_alive.mean()), 4),
        }


def forecast(frequency: ArrayLike, recency: ArrayLike, age: ArrayLike, monetary: ArrayLike,
             horizon_days: float = 365) -> ClvForecast:  # fmt: skip
    """Fit both models and predict each customer's value over the horizon (undiscounted).
    Without enough repeat buyers for Gamma-Gamma, each order is valued at the observed mean."""
    x, tx, big_t, m = _arrays(frequency, recency, age, monetary)
    bgnbd = fit_bgnbd(x, tx, big_t)
    try:
        gg: GammaGamma | None = fit_gamma_gamma(x, m)
    except NotEnoughData:
        gg = None
    orders = bgnbd.expected_orders(horizon_days, x, tx, big_t)
    if gg is not None and gg.q > 1:
        value = gg.expected_order_value(x, m)
    else:
        value = np.full_like(x, float(m[m > 0].mean()) if (m > 0).any() else 0.0)
    alive = bgnbd.probability_alive(x, tx, big_t)
    return ClvForecast(bgnbd, gg, horizon_days, len(x), orders, value, alive)
