"""The sandbox world: deterministic, calibrated to published e-mail benchmarks, heterogeneous,
fatiguing, idempotent, and as messy as a real feed."""

from __future__ import annotations

import json
import re
import zoneinfo
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from journeyman.connectors.destination import OutboundMessage
from journeyman.sandbox import Action, SandboxError, SandboxWorld, read_outbox
from journeyman.sandbox.randomness import KeyedStream
from journeyman.sandbox.regions import utc_offsets_hours
from journeyman.warehouse import Warehouse

START = date(2026, 1, 1)
RAW = ("customers", "orders", "consents", "message_events")
CATEGORIES = ("apparel", "beauty", "electronics", "home", "sports")


def make_world(path: Path, n: int, seed: int = 1) -> tuple[Warehouse, SandboxWorld]:
    warehouse = Warehouse(path)
    world = SandboxWorld(warehouse, seed=seed)
    world.create(n_customers=n, start=START)
    return warehouse, world


def emailable(warehouse: Warehouse, limit: int | None = None) -> list[tuple[str, int]]:
    """(customer_id, region) of clean customers currently opted in to e-mail."""
    sql = (
        "select t.customer_id, t.region from sandbox.customer_traits t "
        "join sandbox.customer_state s using (customer_id) "
        "where s.consent_email and t.defect = 0 order by t.customer_id"
    )
    rows = [(r[0], int(r[1])) for r in warehouse.rows(sql)]
    return rows[:limit] if limit else rows


def messages(
    customers: Sequence[tuple[str, int]],
    day: date,
    *,
    channel: str = "email",
    local_hour: int = 10,
    tags: dict[str, str] | None = None,
    prefix: str = "d",
) -> list[OutboundMessage]:
    """One message per customer at `local_hour` in their own time zone on `day`."""
    offsets = utc_offsets_hours(day)
    out = []
    for cid, region in customers:
        hour = int((local_hour - offsets[region]) % 24)
        out.append(
            OutboundMessage(
                decision_id=f"{prefix}-{day:%Y%m%d}-{cid}",
                idempotency_key=f"k-{cid}",
                agent="test",
                customer_id=cid,
                channel=channel,
                message_id="m1",
                to="x",
                subject="Hi",
                body="Hello",
                send_at=f"{day.isoformat()}T{hour:02d}:00:00Z",
                tags=tags if tags is not None else {"category": "any", "offer": "none"},
            )
        )
    return out


def snapshot(warehouse: Warehouse) -> dict[str, list[tuple]]:
    out = {}
    for table in RAW:
        rows = warehouse.rows(f"select * from raw.{table} order by all")
        out[table] = [tuple(r) for r in rows]
    return out


def event_counts(warehouse: Warehouse, since: date | None = None) -> dict[str, int]:
    where = f"where occurred_at >= '{since}'" if since else ""
    rows = warehouse.rows(
        f"select event_type, count(distinct event_id) from raw.message_events {where} group by 1"
    )
    return {r[0]: int(r[1]) for r in rows}


# -- determinism --------------------------------------------------------------------------


def run_three_days(path: Path, seed: int, separate_processes: bool) -> dict[str, list[tuple]]:
    warehouse, world = make_world(path, 1500, seed)
    customers = emailable(warehouse)
    for k in range(3):
        if separate_processes:  # a fresh object and no in-process cache, as in a new process
            SandboxWorld._traits_cache.clear()
            world = SandboxWorld(Warehouse(path), seed=seed)
        day = START + timedelta(days=k)
        batch = messages(
            customers[k * 400 : (k + 1) * 400],
            day,
            tags={"category": CATEGORIES[k], "offer": "discount_10"},
        )
        world.simulate_day(day, list(reversed(batch)) if separate_processes else batch)
    return snapshot(warehouse)


def test_same_seed_gives_identical_raw_tables_across_processes(tmp_path: Path) -> None:
    a = run_three_days(tmp_path / "a.duckdb", seed=11, separate_processes=False)
    b = run_three_days(tmp_path / "b.duckdb", seed=11, separate_processes=True)
    c = run_three_days(tmp_path / "c.duckdb", seed=12, separate_processes=False)
    assert all(len(a[t]) > 0 for t in RAW)
    assert a == b
    assert a["customers"] != c["customers"]
    assert a["orders"] != c["orders"]
    assert a["message_events"] != c["message_events"]


def test_a_message_meets_the_same_luck_whatever_else_is_sent(tmp_path: Path) -> None:
    """Paired runs: the same world seed, 300 or 900 messages on one day; each of the 300 sent in
    both gets the same events at the same instants (its draws are keyed by the message), and
    the orders they bring are the same."""
    events, orders = {}, {}
    for arm, n in (("few", 300), ("many", 900)):
        warehouse, world = make_world(tmp_path / f"{arm}.duckdb", 1500, seed=5)
        customers = emailable(warehouse)
        world.simulate_day(START, messages(customers[:n], START))
        world.simulate_day(START + timedelta(days=1))
        rows = warehouse.rows(
            "select distinct decision_id, event_type, occurred_at from raw.message_events "
            "where decision_id like 'd-%' order by all"  # distinct: the ESP resends a few
        )
        events[arm] = [tuple(r) for r in rows]
        first = "', '".join(c for c, _ in customers[:300])
        orders[arm] = warehouse.rows(
            "select distinct customer_id, ordered_at, amount from raw.orders "
            f"where ordered_at >= '{START}' and customer_id in ('{first}') order by all"
        )
    shared = {d for d, _, _ in events["few"]}
    assert len(shared) == 300
    assert {t for _, t, _ in events["few"]} >= {"delivered", "open"}
    assert [r for r in events["many"] if r[0] in shared] == events["few"]
    assert orders["few"] and orders["many"] == orders["few"]


def test_keyed_draws_follow_their_key_not_their_position() -> None:
    keys = np.arange(10_000, dtype=np.uint64)
    first = KeyedStream(3, "test", START, keys)
    subset = KeyedStream(3, "test", START, keys[::-7])
    a, b = first.random((2, len(keys))), subset.random((2, len(keys[::-7])))
    assert np.array_equal(a[:, ::-7], b)
    assert not np.array_equal(a[0], a[1])  # each call and row: fresh numbers
    normal = first.normal(1.0, 2.0, len(keys))
    assert abs(normal.mean() - 1.0) < 0.1 and abs(normal.std() - 2.0) < 0.1
    picks = first.choice(3, size=len(keys), p=np.array([0.2, 0.3, 0.5]))
    assert np.allclose(np.bincount(picks) / len(keys), [0.2, 0.3, 0.5], atol=0.02)
    other_day = KeyedStream(3, "test", START + timedelta(days=1), keys).random(len(keys))
    assert abs(np.corrcoef(a[0], other_day)[0, 1]) < 0.05
    with pytest.raises(ValueError, match="last axis"):
        first.random(5)


# -- calibration ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """20,000 customers; the same world twice: e-mail everyone once on day 0, or nobody."""
    base = tmp_path_factory.mktemp("calibration")
    out: dict = {}
    for arm in ("email", "none"):
        warehouse, world = make_world(base / f"{arm}.duckdb", 20_000, seed=7)
        customers = emailable(warehouse)
        if arm == "email":
            out["truth"] = world.truth.expected_reward(
                [c for c, _ in customers], "email", 10, {"category": "any"}, window_days=14
            )
        world.simulate_day(START, messages(customers, START) if arm == "email" else [])
        world.simulate_day(START + timedelta(days=13))
        buyers = {
            r[0]
            for r in warehouse.rows(
                "select distinct customer_id from raw.orders where ordered_at >= :a and "
                "ordered_at < :b",
                {"a": START, "b": START + timedelta(days=14)},
            )
        }
        ids = {c for c, _ in customers}
        out[arm] = {
            "warehouse": warehouse,
            "sent": len(customers),
            "conversion": len(buyers & ids) / len(ids),
        }
    return out


def test_email_engagement_matches_esp_benchmarks(campaign: dict) -> None:
    warehouse, sent = campaign["email"]["warehouse"], campaign["email"]["sent"]
    counts = event_counts(warehouse, since=START)  # not the brand's past campaigns
    delivered = counts["delivered"]
    assert sent > 15_000
    assert 0.15 <= counts["open"] / delivered <= 0.26  # Mailchimp 22.7 %, e-commerce 15.7 %
    assert 0.018 <= counts["click"] / delivered <= 0.035  # 2.9 %, e-commerce 2.1 %
    assert 0.006 <= counts["bounce"] / sent <= 0.016  # 0.40 % hard + 0.61 % soft
    assert 0.0012 <= counts["unsubscribe"] / delivered <= 0.0045  # 0.25 %
    assert counts.get("complaint", 0) / delivered < 0.001


def test_two_week_conversion_is_hillstrom_like(campaign: dict) -> None:
    without, with_ = campaign["none"]["conversion"], campaign["email"]["conversion"]
    assert 0.003 <= without <= 0.010  # Hillstrom: 0.6 % without e-mail
    assert 0.007 <= with_ <= 0.016  # 0.9-1.3 % with one
    assert 0.002 <= with_ - without <= 0.008
    truth = campaign["truth"]
    predicted_lift = float(truth.incremental_conversion.mean())
    assert abs((with_ - without) - predicted_lift) < 0.0015  # ground truth matches the world


def test_feed_has_bad_rows_at_small_rates(campaign: dict) -> None:
    warehouse: Warehouse = campaign["none"]["warehouse"]
    rows = warehouse.rows("select customer_id, email, phone, time_zone from raw.customers")
    n = len(rows)
    email_ok = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]+$")
    phone_ok = re.compile(r"^\+[1-9]\d{7,14}$")
    zones = zoneinfo.available_timezones()
    null_ids = sum(r[0] is None for r in rows)
    bad_email = sum(r[1] is not None and not email_ok.match(r[1]) for r in rows)
    bad_phone = sum(r[2] is not None and not phone_ok.match(r[2]) for r in rows)
    bad_zone = sum(r[3] not in zones for r in rows)
    ids = [r[0] for r in rows if r[0] is not None]
    duplicated = len(ids) - len(set(ids))
    for count in (null_ids, bad_email, bad_phone, bad_zone, duplicated):
        assert 0.002 * n <= count <= 0.009 * n
    simulated = "from raw.message_events where occurred_at >= :s"  # not the campaign history
    events = warehouse.rows(f"select count(*), count(distinct event_id) {simulated}", {"s": START})
    assert events[0] == (0, 0)  # no messages in this arm
    email_arm: Warehouse = campaign["email"]["warehouse"]
    total, distinct = email_arm.rows(
        f"select count(*), count(distinct event_id) {simulated}", {"s": START}
    )[0]
    assert 0.002 * distinct <= total - distinct <= 0.009 * distinct


def test_unsubscribes_write_opted_out_consents(campaign: dict) -> None:
    warehouse: Warehouse = campaign["email"]["warehouse"]
    quits = set(
        warehouse.rows(
            "select distinct customer_id, channel from raw.message_events "
            "where event_type in ('unsubscribe', 'complaint')"
        )
    )
    opted_out = set(
        warehouse.rows(
            "select customer_id, channel from raw.consents where status = 'opted_out' "
            "and recorded_at >= :start",
            {"start": START},
        )
    )
    assert len(quits) > 10
    assert quits == opted_out


# -- heterogeneity -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Warehouse, SandboxWorld]:
    return make_world(tmp_path_factory.mktemp("het") / "w.duckdb", 5000, seed=5)


def test_customers_live_on_four_continents(small_world: tuple[Warehouse, SandboxWorld]) -> None:
    warehouse, _ = small_world
    zones = [r[0] for r in warehouse.rows("select distinct time_zone from raw.customers")]
    continents = {z.split("/")[0] for z in zones if z in zoneinfo.available_timezones()}
    assert len(continents) >= 4
    countries = {r[0] for r in warehouse.rows("select distinct country from raw.customers")}
    assert {"US", "BR", "GB", "DE", "JP", "IN", "AU", "ZA"} <= countries


def test_best_hour_and_channel_differ_across_customers(
    small_world: tuple[Warehouse, SandboxWorld],
) -> None:
    truth = small_world[1].truth
    consenting = truth.traits.customer_id[truth.state.consent[:, 0]]
    best_hour, _ = truth.best_actions(
        consenting, [Action("email", h) for h in range(24)], objective="conversion"
    )
    shares = np.bincount(best_hour, minlength=24) / len(best_hour)
    assert (shares > 0.05).sum() >= 4  # morning, midday and evening people
    assert shares.max() < 0.5
    everywhere = truth.state.consent.all(axis=1) & truth.traits.deliverable.all(axis=1)
    assert everywhere.sum() > 100
    best_channel, _ = truth.best_actions(
        truth.traits.customer_id[everywhere],
        [Action(c, 12) for c in ("email", "sms", "push")],
        objective="conversion",
    )
    assert (np.bincount(best_channel, minlength=3) / len(best_channel)).min() > 0.1


def test_matching_category_beats_a_mismatched_one(
    small_world: tuple[Warehouse, SandboxWorld],
) -> None:
    truth = small_world[1].truth
    ids = truth.traits.customer_id[truth.state.consent[:, 0]]
    affinity = truth.traits.affinity[truth.traits.index_of(ids)]
    names = np.array(CATEGORIES)
    match = truth.expected_reward(ids, "email", 10, {"category": names[affinity.argmax(1)]})
    mismatch = truth.expected_reward(ids, "email", 10, {"category": names[affinity.argmin(1)]})
    assert match.incremental_revenue.mean() > 1.5 * mismatch.incremental_revenue.mean()
    assert match.incremental_conversion.mean() > mismatch.incremental_conversion.mean()
    nothing = truth.expected_reward(ids, None)
    assert np.allclose(nothing.conversion, nothing.baseline_conversion)
    assert (nothing.opt_out == 0).all()
    # unknown tags are neutral
    neutral = truth.expected_reward(ids, "email", 10, {"category": "any"})
    odd = truth.expected_reward(ids, "email", 10, {"category": "toys", "tone": "weird"})
    assert np.allclose(neutral.revenue, odd.revenue)


def test_offer_effects_depend_on_the_customer(small_world: tuple[Warehouse, SandboxWorld]) -> None:
    truth = small_world[1].truth
    ids = truth.traits.customer_id[truth.state.consent[:, 0]]
    offers = ("none", "discount_10", "discount_20", "free_shipping")
    best, _ = truth.best_actions(
        ids, [Action("email", 10, {"offer": o}) for o in offers], objective="revenue"
    )
    shares = np.bincount(best, minlength=4) / len(best)
    assert shares[0] > 0.1 and shares[2] > 0.1  # discounts pay for some, not for others
    full = truth.expected_reward(ids, "email", 10, {"offer": "none"})
    deal = truth.expected_reward(ids, "email", 10, {"offer": "discount_20"})
    assert deal.incremental_conversion.mean() > full.incremental_conversion.mean()


def test_discounts_in_the_order_history_trace_price_sensitivity(
    small_world: tuple[Warehouse, SandboxWorld],
) -> None:
    warehouse, world = small_world
    rows = warehouse.rows(
        "select customer_id, count(*), sum(case when discount_amount > 0 then 1 else 0 end), "
        "sum(discount_amount) / sum(amount + discount_amount) from raw.orders group by 1"
    )
    ids = np.array([r[0] for r in rows])
    orders, discounted = (np.array([r[k] for r in rows], dtype=float) for k in (1, 2))
    share_discounted = discounted.sum() / orders.sum()
    assert 0.08 < share_discounted < 0.3  # promotion codes on a minority of orders
    money_off = np.array([r[3] for r in rows], dtype=float)
    assert money_off.max() <= 0.2 + 1e-3  # the brand's codes take 10-20 % off
    sensitivity = world.truth.traits.price_sensitivity[world.truth.traits.index_of(ids)]
    frequent = orders >= 3
    assert np.corrcoef(discounted[frequent] / orders[frequent], sensitivity[frequent])[0, 1] > 0.3
    # the customers a 20 % discount suits best use codes more often
    truth = world.truth
    offers = ("none", "discount_20")
    best, _ = truth.best_actions(
        ids, [Action("email", 10, {"offer": o}) for o in offers], objective="revenue"
    )
    rate = discounted / orders
    assert rate[best == 1].mean() > 1.3 * rate[best == 0].mean()


def test_orders_under_a_coupon_record_the_discount(tmp_path: Path) -> None:
    warehouse, world = make_world(tmp_path / "w.duckdb", 8000, seed=3)
    customers = emailable(warehouse)
    world.simulate_day(START, messages(customers, START, tags={"offer": "discount_20"}))
    world.simulate_day(START + timedelta(days=6))
    rows = warehouse.rows(
        "select amount, discount_amount from raw.orders where ordered_at >= :s", {"s": START}
    )
    assert all(d is not None for _, d in rows)  # 0 without a discount, never NULL
    discounted = [(a, d) for a, d in rows if d > 0]
    assert len(discounted) >= 10
    for paid, money_off in discounted:  # 20 % off: the money off is a quarter of what was paid
        assert money_off == pytest.approx(paid / 4, abs=0.011)


# -- fatigue ----------------------------------------------------------------------------


def test_daily_messaging_fatigues_versus_weekly(tmp_path: Path) -> None:
    rates = {}
    for cadence in (1, 7):
        warehouse, world = make_world(tmp_path / f"c{cadence}.duckdb", 3000, seed=3)
        customers = emailable(warehouse)
        for k in range(14):
            day = START + timedelta(days=k)
            world.simulate_day(day, messages(customers, day) if k % cadence == 0 else [])
        counts = event_counts(warehouse, since=START)
        rates[cadence] = {
            t: counts.get(t, 0) / counts["delivered"] for t in ("open", "click", "unsubscribe")
        }
    daily, weekly = rates[1], rates[7]
    assert daily["open"] < 0.8 * weekly["open"]
    assert daily["click"] < 0.9 * weekly["click"]
    assert daily["unsubscribe"] > 1.5 * weekly["unsubscribe"]


def _circular_agreement(hours: np.ndarray, reference: np.ndarray) -> float:
    """Mean cos of the angle between two hours on the 24-hour clock (1 = same hour, 0 = none)."""
    return float(np.mean(np.cos((hours - reference) * np.pi / 12)))


def test_campaign_history_is_the_esp_record_before_start(
    small_world: tuple[Warehouse, SandboxWorld],
) -> None:
    """Weekly e-mail, fortnightly push, monthly SMS for 26 weeks: delivered to consented,
    signed-up customers only; undeliverable addresses bounce once; opens and clicks at ESP rates;
    nothing on or after the start; the opens' local hours point at each customer's own hour."""
    warehouse, _ = small_world
    counts = {
        (r[0], r[1]): int(r[2])
        for r in warehouse.rows(
            "select channel, event_type, count(*) from raw.message_events group by 1, 2"
        )
    }
    assert (
        warehouse.scalar(
            "select count(*) from raw.message_events where occurred_at >= :s", {"s": START}
        )
        == 0
    )
    assert (
        warehouse.scalar("select count(*) - count(distinct event_id) from raw.message_events") == 0
    )
    delivered = counts[("email", "delivered")]
    assert 0.15 <= counts[("email", "open")] / delivered <= 0.26
    assert 0.012 <= counts[("email", "click")] / delivered <= 0.035
    for channel in ("sms", "push"):
        assert counts[(channel, "delivered")] > 0
    # recipients: consented when the world began, signed up before the send
    rogue = warehouse.scalar(
        """
        select count(*)
        from raw.message_events e
        join sandbox.customer_traits t using (customer_id)
        where e.event_type = 'delivered'
          and (
            (e.channel = 'email' and not t.consent0_email)
            or (e.channel = 'sms' and not t.consent0_sms)
            or (e.channel = 'push' and not t.consent0_push)
            or cast(e.occurred_at as date) <= date '1970-01-01' + cast(t.signup_day as integer)
          )
        """
    )
    assert rogue == 0
    bounces = warehouse.rows(
        "select customer_id, channel, count(*) from raw.message_events "
        "where event_type = 'bounce' group by 1, 2"
    )
    assert bounces and all(n == 1 for _, _, n in bounces)
    hard = warehouse.scalar("select count(*) from sandbox.customer_state where hard_bounced_email")
    assert hard == sum(1 for _, channel, _ in bounces if channel == "email")
    # the local hour of first opens agrees with each customer's preferred hour
    rows = warehouse.rows(
        """
        select t.pref_hour, c.time_zone, e.occurred_at
        from raw.message_events e
        join sandbox.customer_traits t using (customer_id)
        join raw.customers c using (customer_id)
        where e.event_type = 'open' and e.channel = 'email' and t.defect = 0
        """
    )
    pref = np.array([r[0] for r in rows])
    local = np.array(
        [
            r[2].replace(tzinfo=zoneinfo.ZoneInfo("UTC")).astimezone(zoneinfo.ZoneInfo(r[1]))
            for r in rows
        ]
    )
    hours = np.array([t.hour + t.minute / 60 for t in local])
    agreement = _circular_agreement(hours, pref)
    assert agreement > 0.25
    shuffled = np.random.default_rng(0).permutation(pref)
    assert agreement > 2 * abs(_circular_agreement(hours, shuffled))


def test_messages_are_noticed_at_the_customers_active_hour(tmp_path: Path) -> None:
    """Half of the e-mails are opened when the customer next turns to their inbox, at their own
    hour; SMS clicks follow the send within minutes."""
    warehouse, world = make_world(tmp_path / "w.duckdb", 3000, seed=4)
    customers = emailable(warehouse)
    world.simulate_day(START, messages(customers, START, local_hour=10))
    rows = warehouse.rows(
        """
        select t.pref_hour, c.time_zone, e.occurred_at
        from raw.message_events e
        join sandbox.customer_traits t using (customer_id)
        join raw.customers c using (customer_id)
        where e.event_type = 'open' and e.occurred_at >= :s and t.defect = 0
        """,
        {"s": START},
    )
    assert len(rows) > 300
    local = [
        r[2].replace(tzinfo=zoneinfo.ZoneInfo("UTC")).astimezone(zoneinfo.ZoneInfo(r[1]))
        for r in rows
    ]
    hours = np.array([t.hour + t.minute / 60 for t in local])
    pref = np.array([r[0] for r in rows])
    near_send = np.mean(np.abs(hours - 10.5) < 2.5)
    assert 0.3 < near_send < 0.9  # some right away, the rest at the active hour
    assert _circular_agreement(hours, pref) > 0.25


# -- idempotence, pending responses, edge cases -----------------------------------------------


def test_simulate_day_is_idempotent_and_create_checks_params(tmp_path: Path) -> None:
    warehouse, world = make_world(tmp_path / "w.duckdb", 2000)
    batch = messages(emailable(warehouse), START)
    first = world.simulate_day(START, batch)
    before = snapshot(warehouse)
    again = world.simulate_day(START, batch)
    other = world.simulate_day(START, messages(emailable(warehouse), START, prefix="x"))
    assert snapshot(warehouse) == before
    assert again.replayed and other.replayed and not first.replayed
    assert again.messages == first.messages > 0
    world.create(n_customers=2000, start=START)  # same params: no-op
    assert snapshot(warehouse) == before
    with pytest.raises(SandboxError, match="already holds"):
        world.create(n_customers=3000, start=START)
    with pytest.raises(SandboxError, match="before the world's start"):
        world.simulate_day(START - timedelta(days=1))
    # a gap is filled with message-free days
    world.simulate_day(START + timedelta(days=3))
    assert world.last_day == START + timedelta(days=3)
    assert [s.day for s in world.summaries()] == [START + timedelta(days=k) for k in range(4)]


def test_later_responses_appear_on_their_own_day_only(tmp_path: Path) -> None:
    warehouse, world = make_world(tmp_path / "w.duckdb", 4000)
    world.simulate_day(
        START, messages(emailable(warehouse), START, local_hour=20, tags={"offer": "discount_20"})
    )
    end = START + timedelta(days=1)
    assert (
        warehouse.scalar("select count(*) from raw.orders where ordered_at >= :e", {"e": end}) == 0
    )
    assert (
        warehouse.scalar(
            "select count(*) from raw.message_events where occurred_at >= :e", {"e": end}
        )
        == 0
    )
    pending = warehouse.rows(
        "select id, due_day, occurred_at from sandbox.pending_events where kind = 'order'"
    )
    assert len(pending) > 0
    later_ids = {p[0] for p in pending}
    for k in range(1, 11):
        day = START + timedelta(days=k)
        world.simulate_day(day)
        loaded = warehouse.rows(
            "select order_id, ordered_at, _loaded_at from raw.orders where order_id in "
            f"({', '.join(repr(i) for i in later_ids)})"
        )
        for _order_id, ordered_at, loaded_at in loaded:
            assert ordered_at.date() <= day
            assert loaded_at.date() == ordered_at.date() + timedelta(days=1)
        due_later = {p[0] for p in pending if p[2].date() > day}
        assert not due_later & {r[0] for r in loaded}
    assert {r[0] for r in loaded} == later_ids
    assert warehouse.scalar("select count(*) from sandbox.pending_events") == 0


def test_odd_messages_are_handled_like_an_esp_would(tmp_path: Path) -> None:
    warehouse, world = make_world(tmp_path / "w.duckdb", 3000)
    malformed = [
        r[0]
        for r in warehouse.rows(
            "select customer_id from sandbox.customer_traits where defect = 1 limit 3"
        )
    ]
    no_consent = [
        r[0]
        for r in warehouse.rows(
            "select customer_id from sandbox.customer_state where not consent_sms "
            "order by customer_id limit 5"
        )
    ]
    batch = messages([(c, 0) for c in malformed], START, prefix="bad")
    batch += messages([(c, 0) for c in no_consent], START, channel="sms", prefix="sms")
    batch += messages([("nobody", 0)], START, prefix="ghost")
    batch += messages([("c000001", 0)], START, channel="fax", prefix="fax")
    batch += messages([("c000002", 0)], START + timedelta(days=2), prefix="future")
    summary = world.simulate_day(START, batch)
    assert summary.ignored == 3
    assert summary.suppressed == 5
    bounced = {
        r[0]
        for r in warehouse.rows(
            "select customer_id from raw.message_events where event_type = 'bounce'"
        )
    }
    assert set(malformed) <= bounced
    assert not bounced & set(no_consent)


def test_read_outbox_reads_nested_jsonl_once_per_decision(tmp_path: Path) -> None:
    batch = messages([("c000001", 0), ("c000002", 3)], START)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "sendgrid.jsonl").write_text(
        "\n".join(json.dumps(m.to_dict()) for m in batch) + "\n\n"
    )
    (tmp_path / "b.jsonl").write_text(json.dumps(batch[0].to_dict()) + "\n")
    (tmp_path / "notes.txt").write_text("not an outbox")
    read = read_outbox(tmp_path)
    assert read == batch
    assert read_outbox(tmp_path / "missing") == []
