"""Customer KPI definitions on small counts, against values computed by hand."""

from __future__ import annotations

from datetime import UTC, datetime

from services.profile.kpis import PeriodActivity, Totals, customer_kpis, retention


def test_window_kpis_equal_hand_computed_values() -> None:
    # 10 customers active, 4 bought: 7 orders worth 350, one refund of 20; 2 bought twice or
    # more; 3 customers sent 5 referrals.
    totals = Totals(customers=10, buyers=4, repeat_buyers=2, orders=7, revenue=350.0,
                    refunded=20.0, referrers=3, referrals=5)  # fmt: skip
    kpis = customer_kpis(totals)
    assert kpis == {
        "customers": 10,
        "buyers": 4,
        "orders": 7,
        "revenue": 350.0,
        "refunded": 20.0,
        "repeat_purchase_rate": 0.5,  # 2 / 4
        "average_basket": 50.0,  # 350 / 7
        "purchase_frequency": 1.75,  # 7 / 4
        "historical_clv": 82.5,  # (350 - 20) / 4
        "referrals": 5,
        "referral_rate": 0.3,  # 3 / 10
    }


def test_nobody_bought_gives_no_rates_rather_than_zero_division() -> None:
    kpis = customer_kpis(Totals(0, 0, 0, 0, 0.0, 0.0, 0, 0))
    assert kpis["repeat_purchase_rate"] is None
    assert kpis["average_basket"] is None
    assert kpis["referral_rate"] is None


def test_retention_and_churn_per_period() -> None:
    jan, feb, mar = (datetime(2026, m, 1, tzinfo=UTC) for m in (1, 2, 3))
    series = retention([
        PeriodActivity(jan, active=4, previous_active=0, retained=0),
        PeriodActivity(feb, active=3, previous_active=4, retained=3),
        PeriodActivity(mar, active=5, previous_active=3, retained=1),
    ])  # fmt: skip
    assert [(p["retention_rate"], p["churn_rate"]) for p in series] == [
        (None, None),
        (0.75, 0.25),
        (0.3333, 0.6667),
    ]
    assert series[1]["period"] == "2026-02-01T00:00:00+00:00"
