"""A synthetic shop with a fixed seed: customers with traits and consent, a catalogue, and the
traffic they make. Shared by the demo, the tests and the benchmarks, so all three see the same
kind of data. Message ids carry a run id, so replaying a seed in the same database is new traffic.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

FIRST_NAMES = (
    "Alice", "Bruno", "Chloé", "Daniel", "Elena", "Farid", "Giulia", "Hugo", "Inès", "Jonas",
    "Katarzyna", "Léo", "Maya", "Nils", "Olivia", "Pablo", "Quentin", "Rosa", "Sami", "Tessa",
    "Ulrich", "Valentina", "Wen", "Xavier", "Yasmine", "Zoé",
)  # fmt: skip
LAST_NAMES = (
    "Martin", "Bernard", "Rossi", "Müller", "García", "Nowak", "Dubois", "Silva", "Janssen",
    "Moreau", "Novak", "Laurent", "Fontaine", "Ricci", "Weber", "Lopez",
)  # fmt: skip
CATALOGUE = (
    ("sku-espresso", "Espresso beans 1kg", 24.90), ("sku-grinder", "Burr grinder", 149.00),
    ("sku-kettle", "Gooseneck kettle", 59.00), ("sku-filter", "Paper filters x100", 6.50),
    ("sku-mug", "Ceramic mug", 14.00), ("sku-scale", "Brew scale", 39.90),
)  # fmt: skip
MACHINE = ("sku-machine", "Dual-boiler espresso machine", 1_290.00)


@dataclass(frozen=True)
class Customer:
    user_id: str
    anonymous_id: str
    first_name: str
    last_name: str
    email: str
    marketing_email: bool
    buys: bool
    abandons: bool = False  # starts a checkout and never orders
    big_spender: bool = False  # buys an espresso machine (loyalty-premium)
    birthday: str | None = None  # YYYY-MM-DD


def customers(count: int, rng: random.Random) -> list[Customer]:
    out = []
    for i in range(count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        out.append(
            Customer(
                user_id=f"cust-{i:06d}",
                anonymous_id=str(uuid.UUID(int=rng.getrandbits(128))),
                first_name=first,
                last_name=last,
                email=f"{first.lower()}.{last.lower()}.{i}@example.com".encode(
                    "ascii", "ignore"
                ).decode(),
                marketing_email=rng.random() < 0.8,
                buys=(buys := rng.random() < 0.6),
                abandons=not buys and rng.random() < 0.5,
                big_spender=buys and rng.random() < 0.15,
                birthday=_birthday(rng),
            )
        )
    return out


def _birthday(rng: random.Random) -> str:
    """One customer in ten has their birthday today (the demo's birthday journey fires)."""
    year = rng.randint(1960, 2004)
    if rng.random() < 0.1:
        try:
            return datetime.now(UTC).date().replace(year=year).isoformat()
        except ValueError:  # 29 February
            return f"{year}-03-01"
    return f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _message(run: str, seq: int, **fields: Any) -> dict[str, Any]:
    return {"messageId": f"{run}-{seq:08d}", **fields}


def traffic(
    shoppers: list[Customer], rng: random.Random, run: str, start: datetime | None = None
) -> Iterator[dict[str, Any]]:
    """Each customer's session in order: visit anonymously, identify, browse, maybe buy."""
    clock = start or datetime.now(UTC) - timedelta(minutes=30)
    seq = 0

    def stamp() -> str:
        nonlocal clock
        clock += timedelta(milliseconds=rng.randint(5, 400))
        return clock.isoformat()

    for c in shoppers:
        anon = {"anonymousId": c.anonymous_id}
        yield _message(run, seq := seq + 1, type="page", name="Home", timestamp=stamp(), **anon)
        yield _message(
            run, seq := seq + 1, type="identify", userId=c.user_id, timestamp=stamp(), **anon,
            traits={
                "first_name": c.first_name, "last_name": c.last_name, "email": c.email,
                "language": "en", "birthday": c.birthday,
                "consent": {"email": {"marketing": c.marketing_email, "transactional": True}},
            },
        )  # fmt: skip
        yield _message(run, seq := seq + 1, type="track", event="Signed Up", userId=c.user_id,
                       timestamp=stamp(), properties={"method": "email"})  # fmt: skip
        basket = rng.sample(CATALOGUE, rng.randint(1, 3))
        if c.big_spender:
            basket.append(MACHINE)
        for sku, name, price in basket:
            props = {"product_id": sku, "name": name, "price": price}
            yield _message(run, seq := seq + 1, type="track", event="Product Viewed",
                           userId=c.user_id, timestamp=stamp(), properties=props)  # fmt: skip
            yield _message(run, seq := seq + 1, type="track", event="Product Added",
                           userId=c.user_id, timestamp=stamp(), properties=props)  # fmt: skip
        cart = {"cart_id": f"cart-{run}-{c.user_id}"}
        if c.buys or c.abandons:
            yield _message(run, seq := seq + 1, type="track", event="Checkout Started",
                           userId=c.user_id, timestamp=stamp(), properties=cart)  # fmt: skip
        if c.buys:
            total = round(sum(p for _, _, p in basket), 2)
            order = f"ord-{run}-{c.user_id}"
            yield _message(
                run, seq := seq + 1, type="track", event="Order Completed", userId=c.user_id,
                timestamp=stamp(),
                properties={
                    "order_id": order, "revenue": total, "currency": "EUR", **cart,
                    "products": [{"product_id": s, "price": p} for s, _, p in basket],
                },
            )  # fmt: skip
            yield _message(run, seq := seq + 1, type="track", event="Order Delivered",
                           userId=c.user_id, timestamp=stamp(),
                           properties={"order_id": order})  # fmt: skip


def survey_answers(
    shoppers: list[Customer], rng: random.Random, run: str
) -> Iterator[dict[str, Any]]:
    """What buyers answer to the NPS survey after delivery (about one in four detractors)."""
    for i, c in enumerate(s for s in shoppers if s.buys):
        score = rng.choice((2, 4, 6, 7, 8, 9, 9, 10, 10, 10, 3, 9))
        yield _message(f"{run}-nps", i, type="track", event="Survey Responded", userId=c.user_id,
                       timestamp=datetime.now(UTC).isoformat(),
                       properties={"survey": "nps", "score": score,
                                   "journey_id": "post-delivery-survey"})  # fmt: skip
