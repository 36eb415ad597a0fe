"""Customer KPIs from counts the database aggregates. The definitions, in one place:

- **Active** in a period: placed an order in it (`active_on="order"`, the e-commerce default)
  or sent any event at all (`active_on="event"`: engagement rather than buying).
- **Retention** of period P: the share of customers active in P-1 who are active again in P;
  **churn** of P is 1 - retention. Periods are calendar weeks (ISO, from Monday), months or
  quarters in UTC (`period`).
- Over a window (`since` .. `until`, default everything):
  **repeat purchase rate** = buyers with 2+ orders / buyers;
  **average basket** = revenue / orders;
  **purchase frequency** = orders / buyers;
  **historical CLV** = (revenue - refunds) / buyers, the average net revenue a buyer brought;
  **referral rate** = customers who sent a `Referral` event / active customers (any event).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Period = Literal["week", "month", "quarter"]
ActiveOn = Literal["order", "event"]
PERIODS: tuple[Period, ...] = ("week", "month", "quarter")
ACTIVE_ON: tuple[ActiveOn, ...] = ("order", "event")


@dataclass(frozen=True)
class Definitions:
    period: Period = "month"
    active_on: ActiveOn = "order"


@dataclass(frozen=True)
class Totals:
    """What the window holds: `customers` are those with any event in it."""

    customers: int
    buyers: int
    repeat_buyers: int
    orders: int
    revenue: float
    refunded: float
    referrers: int
    referrals: int


@dataclass(frozen=True)
class PeriodActivity:
    """Customers active in a period, and how many of the previous period's came back."""

    start: datetime
    active: int
    previous_active: int
    retained: int


def _ratio(part: float, whole: float, digits: int = 4) -> float | None:
    return round(part / whole, digits) if whole else None


def customer_kpis(t: Totals) -> dict[str, Any]:
    return {
        "customers": t.customers,
        "buyers": t.buyers,
        "orders": t.orders,
        "revenue": round(t.revenue, 2),
        "refunded": round(t.refunded, 2),
        "repeat_purchase_rate": _ratio(t.repeat_buyers, t.buyers),
        "average_basket": _ratio(t.revenue, t.orders, 2),
        "purchase_frequency": _ratio(t.orders, t.buyers),
        "historical_clv": _ratio(t.revenue - t.refunded, t.buyers, 2),
        "referrals": t.referrals,
        "referral_rate": _ratio(t.referrers, t.customers),
    }


def retention(series: list[PeriodActivity]) -> list[dict[str, Any]]:
    """Retention and churn per period; the first period (nobody to retain) has neither."""
    out = []
    for p in series:
        rate = _ratio(p.retained, p.previous_active)
        out.append(
            {
                "period": p.start.isoformat(),
                "active": p.active,
                "previous_active": p.previous_active,
                "retained": p.retained,
                "retention_rate": rate,
                "churn_rate": None if rate is None else round(1 - rate, 4),
            }
        )
    return out
