"""The dbt project end to end: a real `dbt build` on a fresh warehouse with hand-made raw data.

One module-scoped build (as of 2024-03-01) per backend, a DuckDB file and a PostgreSQL database
(tests/backends.py; skipped without a server), feeds every test; the expected values below are
computed by hand from the fixture rows and hold on both.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from backends import backend_params, new_warehouse

from journeyman import settings
from journeyman.decisioning.store import load_arm_statistics
from journeyman.tables import ensure_feature_columns, ensure_journeyman_tables, ensure_raw_tables
from journeyman.warehouse import Warehouse

REPO = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = REPO / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"
RUN_DATE = "2024-03-01"

LOADED = "2024-01-01 00:00:00"

# fmt: off  (fixture tables read best one row per line)

# customer_id, email, phone, push_token, time_zone, country, signup_at, _loaded_at
CUSTOMERS = [
    (
        "c1",
        " Alice@Example.com ",
        "+14155550123",
        "tok1",
        "America/New_York",
        "us",
        "2024-01-01 12:00:00",
        LOADED,
    ),
    (
        "c2",
        "not-an-email",
        "+4915112345678",
        None,
        "Europe/Berlin",
        "DE",
        "2024-02-01 08:00:00",
        LOADED,
    ),
    ("c3", "carol@example.org", "12345", None, "UTC", "GB", "2023-06-01 00:00:00", LOADED),
    (None, "ghost@example.com", None, None, "UTC", "US", "2024-01-01 00:00:00", LOADED),
    (
        "c4",
        "dave@example.com",
        None,
        None,
        "Mars/Olympus_Mons",
        "US",
        "2024-01-01 00:00:00",
        LOADED,
    ),
    # c5 is loaded twice: the latest load (valid time zone, new e-mail) wins
    ("c5", "old@example.com", None, None, "Mars/Base", "JP", "2024-01-01 00:00:00", LOADED),
    (
        "c5",
        "new@example.com",
        None,
        None,
        "Asia/Tokyo",
        "JP",
        "2024-01-01 00:00:00",
        "2024-01-02 00:00:00",
    ),
    # signs up after the as-of instant: not a customer yet, not a data-quality problem
    ("c6", "future@example.com", None, None, "UTC", "US", "2024-03-05 00:00:00", LOADED),
]

# order_id, customer_id, ordered_at, amount, discount_amount, category, _loaded_at
ORDERS = [
    ("o1", "c1", "2024-01-10 10:00:00", 50.0, 5.0, "apparel", LOADED),
    ("o2", "c1", "2024-02-10 10:00:00", 30.0, 0.0, "beauty", "2024-02-11 00:00:00"),
    ("o2", "c1", "2024-02-10 10:00:00", 999.0, 50.0, "beauty", "2024-02-12 00:00:00"),  # duplicate
    ("o3", "c1", "2024-02-25 10:00:00", 20.0, None, "Apparel", LOADED),
    ("o4", "c1", "2024-03-01 00:00:00", 100.0, 10.0, "home", LOADED),  # at the as-of instant
    ("o5", "c3", "2024-02-28 20:00:00", 10.0, 2.5, "home", LOADED),
    (None, "c1", "2024-02-01 00:00:00", 5.0, None, "home", LOADED),
    ("o_neg", "c1", "2024-02-01 00:00:00", -5.0, None, "home", LOADED),
    ("o_null_amount", "c1", "2024-02-01 00:00:00", None, None, "home", LOADED),
    ("o_nan", "c1", "2024-02-01 00:00:00", float("nan"), None, "home", LOADED),
    ("o_toys", "c1", "2024-02-01 00:00:00", 5.0, None, "toys", LOADED),
    ("o_neg_discount", "c1", "2024-02-01 00:00:00", 5.0, -1.0, "home", LOADED),
    ("o_nan_discount", "c1", "2024-02-01 00:00:00", 5.0, float("nan"), "home", LOADED),
    ("o_no_customer", None, "2024-02-01 00:00:00", 5.0, None, "home", LOADED),
]

# customer_id, channel, status, recorded_at, _loaded_at
CONSENTS = [
    ("c1", "email", "opted_in", "2024-01-01 12:00:00", LOADED),
    ("c1", "SMS", "opted_in", "2024-01-01 12:00:00", LOADED),
    ("c1", "sms", "opted_out", "2024-02-01 00:00:00", LOADED),
    ("c1", "push", "opted_in", "2024-01-05 00:00:00", LOADED),
    ("c2", "email", "opted_in", "2024-02-01 08:00:00", LOADED),
    ("c2", "sms", "opted_in", "2024-02-01 08:00:00", LOADED),
    ("c3", "sms", "opted_in", "2023-06-01 00:00:00", LOADED),
    ("c3", "email", "opted_in", "2024-03-02 00:00:00", LOADED),  # after the as-of instant
    ("c1", "fax", "opted_in", "2024-01-01 12:00:00", LOADED),
    ("c2", "email", "maybe", "2024-01-01 12:00:00", LOADED),
]

# decision_id, agent, decision_date, customer_id, policy, policy_version, experiment_group,
# action_id, message_id, channel, local_hour, send_at, propensity, exclusion_reason,
# goal_metric, attribution_window_days, created_at
DECISIONS = [
    # window ends 2024-03-01 15:00, after the as-of instant: no reward yet
    (
        "dA",
        "winback",
        "2024-02-27",
        "c1",
        "thompson",
        "v1",
        "treatment",
        "a_email",
        "m1",
        "email",
        10,
        "2024-02-27 15:00:00",
        0.5,
        None,
        "conversion",
        3,
        "2024-02-27 00:00:00",
    ),
    (
        "dB",
        "winback",
        "2024-02-20",
        "c1",
        "thompson",
        "v1",
        "treatment",
        "a_email",
        "m1",
        "email",
        10,
        "2024-02-20 15:00:00",
        0.5,
        None,
        "conversion",
        3,
        "2024-02-20 00:00:00",
    ),
    # delivery failed: not a sent message
    (
        "dC",
        "winback",
        "2024-02-29",
        "c1",
        "thompson",
        "v1",
        "treatment",
        "a_sms",
        "m2",
        "sms",
        13,
        "2024-02-29 18:00:00",
        0.25,
        None,
        "conversion",
        3,
        "2024-02-29 00:00:00",
    ),
    (
        "dD",
        "winback",
        "2024-02-10",
        "c2",
        "thompson",
        "v1",
        "holdout",
        None,
        None,
        None,
        None,
        None,
        None,
        "holdout",
        "conversion",
        7,
        "2024-02-10 00:00:00",
    ),
    (
        "dE",
        "winback",
        "2024-02-28",
        "c3",
        "thompson",
        "v1",
        "treatment",
        "a_sms",
        "m2",
        "sms",
        9,
        "2024-02-28 09:00:00",
        0.4,
        None,
        "revenue",
        1,
        "2024-02-28 00:00:00",
    ),
    (
        "dG",
        "winback",
        "2024-02-25",
        "c2",
        "thompson",
        "v1",
        "treatment",
        None,
        None,
        None,
        None,
        None,
        None,
        "not_eligible",
        "conversion",
        7,
        "2024-02-25 00:00:00",
    ),
]

# decision_id, destination, status, idempotency_key, attempts, error, provider_message_id,
# updated_at, delivered_at
DELIVERIES = [
    (
        "dA",
        "esp",
        "delivered",
        "k-dA",
        1,
        None,
        "p-dA",
        "2024-02-27 15:00:01",
        "2024-02-27 15:00:01",
    ),
    (
        "dB",
        "esp",
        "delivered",
        "k-dB",
        1,
        None,
        "p-dB",
        "2024-02-20 15:00:01",
        "2024-02-20 15:00:01",
    ),
    (
        "dC",
        "sms",
        "failed_permanent",
        "k-dC",
        3,
        "invalid number",
        None,
        "2024-02-29 18:00:05",
        None,
    ),
    (
        "dE",
        "sms",
        "delivered",
        "k-dE",
        1,
        None,
        "p-dE",
        "2024-02-28 09:00:01",
        "2024-02-28 09:00:01",
    ),
]

# agent, message_id, tag, value: m1 (dA, dB) carries no offer, m2 (dE) a discount
# agent, message_id, tag, value, valid_from, valid_to: m1 carried 10 % off until Feb 25
MESSAGE_TAGS = [
    ("winback", "m1", "offer", "discount_10", None, "2024-02-25"),
    ("winback", "m1", "offer", "none", "2024-02-25", None),
    ("winback", "m1", "tone", "friendly", None, None),
    ("winback", "m2", "offer", "discount_10", "2024-02-01", None),
]

# event_id, decision_id, customer_id, channel, event_type, occurred_at, _loaded_at
EVENTS = [
    # dB has no `delivered` event: it reached c1 at its send_at, 15:00, three hours before
    ("ev1", "dB", "c1", "email", "open", "2024-02-20 18:00:00", "2024-02-20 19:00:00"),
    ("ev1", "dB", "c1", "email", "open", "2024-02-20 18:00:00", "2024-02-21 19:00:00"),
    ("ev2", "dB", "c1", "Email", "CLICK", "2024-02-20 18:05:00", "2024-02-20 19:00:00"),
    ("ev3", "dA", "c1", "email", "open", "2024-02-27 16:00:00", "2024-02-27 17:00:00"),
    ("ev4", "dE", "c3", "sms", "unsubscribe", "2024-02-28 10:00:00", "2024-02-28 11:00:00"),
    # the ESP's record of a journeyman message: not counted twice
    ("ev5", "dA", "c1", "email", "delivered", "2024-02-27 15:01:00", "2024-02-27 17:00:00"),
    # the brand's own newsletter, which journeyman did not send: delivered and opened
    ("ev6", "cmp-1", "c1", "email", "delivered", "2024-02-10 15:00:00", "2024-02-11 02:00:00"),
    ("ev7", "cmp-1", "c1", "email", "open", "2024-02-10 20:00:00", "2024-02-11 02:00:00"),
    (None, "dB", "c1", "email", "open", "2024-02-20 16:00:00", LOADED),
    ("ev_bad", "dB", "c1", "email", "teleport", "2024-02-20 16:00:00", LOADED),
]

FEATURE_COLUMNS = {
    "repurchase_p_alive",
    "repurchase_orders_7d",
    "repurchase_orders_30d",
    "repurchase_p_order_7d",
    "repurchase_days_to_next",
    "repurchase_order_value",
    "offer_response_rate",
    "no_offer_response_rate",
    "order_hour_cos",
    "order_hour_sin",
    "active_hour_cos",
    "active_hour_sin",
    "tenure_days",
    "order_count",
    "orders_last_90d",
    "total_revenue",
    "avg_order_value",
    "discounted_order_share",
    "days_since_last_order",
    "has_ordered",
    "ipi_mean_days",
    "ipi_std_days",
    "affinity_apparel",
    "affinity_beauty",
    "affinity_electronics",
    "affinity_home",
    "affinity_sports",
    "email_open_rate",
    "email_click_rate",
    "sms_click_rate",
    "push_open_rate",
    "messages_last_1d",
    "messages_last_7d",
    "messages_last_30d",
    "email_messages_last_7d",
    "sms_messages_last_7d",
    "push_messages_last_7d",
    "hours_since_last_message",
}
# decision-time features of the decisions whose rewards close by the run date: every feature
# column the same value per decision, so each statistics row's Σx is that value times n
DECISION_FEATURE_VALUES = {"dB": 1.0, "dD": 2.0, "dE": 3.0}
# fmt: on


@dataclass(frozen=True)
class Build:
    """The outcome of one `dbt build`: the warehouse (file or URL), dbt's target folder and
    output."""

    warehouse: str | Path
    target: Path
    result: subprocess.CompletedProcess[str]

    def rows(self, sql: str) -> list[dict[str, Any]]:
        return [dict(r._mapping) for r in Warehouse(self.warehouse, read_only=True).rows(sql)]


def run_dbt(
    args: list[str], warehouse: str | Path, workdir: Path, run_date_env: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run dbt against the project with its own warehouse (a DuckDB file or a PostgreSQL URL:
    the profile's target and its connection from settings.dbt_environment), target and log
    folders."""
    env = {k: v for k, v in os.environ.items() if k != settings.RUN_DATE_ENV}
    env = settings.dbt_process_environment(env, str(warehouse))
    if run_date_env is not None:
        env[settings.RUN_DATE_ENV] = run_date_env
    command = [
        str(DBT),
        *args,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target-path",
        str(workdir / "target"),
        "--log-path",
        str(workdir / "logs"),
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def _insert(conn: sa.Connection, table: str, rows: list[tuple], columns: str = "") -> None:
    names = [f"v{i}" for i in range(len(rows[0]))]
    values = ", ".join(f":{n}" for n in names)
    listed = f" ({columns})" if columns else ""
    statement = sa.text(f"insert into {table}{listed} values ({values})")
    conn.execute(statement, [dict(zip(names, row, strict=True)) for row in rows])


def marked_features() -> list[str]:
    """The columns customer_features' YAML marks `meta: {feature: true}` (what dbt's
    feature_columns() reads), without parsing the project."""
    import yaml

    path = DBT_PROJECT_DIR / "models" / "marts" / "customers" / "_customers__models.yml"
    models = yaml.safe_load(path.read_text())["models"]
    model = next(m for m in models if m["name"] == "customer_features")
    marked = []
    for column in model["columns"]:
        meta = (column.get("config") or {}).get("meta") or column.get("meta") or {}
        if meta.get("feature"):
            marked.append(column["name"])
    return marked


def load_fixture(location: str | Path) -> None:
    """Create the source tables the way journeyman does and insert the fixture rows."""
    warehouse = Warehouse(location)
    ensure_raw_tables(warehouse)
    ensure_journeyman_tables(warehouse)
    with warehouse.connect() as conn:
        _insert(conn, "raw.customers", CUSTOMERS)
        _insert(conn, "raw.orders", ORDERS)
        _insert(conn, "raw.consents", CONSENTS)
        _insert(conn, "raw.message_events", EVENTS)
        _insert(
            conn,
            "journeyman.decisions",
            DECISIONS,
            "decision_id, agent, decision_date, customer_id, policy, policy_version, "
            "experiment_group, action_id, message_id, channel, local_hour, send_at, propensity, "
            "exclusion_reason, goal_metric, attribution_window_days, created_at",
        )
        _insert(conn, "journeyman.message_tags", MESSAGE_TAGS)
    features = marked_features()
    ensure_feature_columns(warehouse, features)
    with warehouse.connect() as conn:
        dates = {d[0]: d[2] for d in DECISIONS}
        _insert(
            conn,
            "journeyman.decision_features",
            [
                (d, "winback", dates[d], *[value] * len(features))
                for d, value in DECISION_FEATURE_VALUES.items()
            ],
            "decision_id, agent, decision_date, " + ", ".join(features),
        )
        _insert(
            conn,
            "journeyman.deliveries",
            DELIVERIES,
            "decision_id, destination, status, idempotency_key, attempts, error, "
            "provider_message_id, updated_at, delivered_at",
        )


@pytest.fixture(scope="module", params=backend_params())
def build(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Build]:
    workdir = tmp_path_factory.mktemp("dbt_build")
    with new_warehouse(request.param, workdir, "dbt") as warehouse:
        load_fixture(warehouse)
        result = run_dbt(
            ["build", "--vars", json.dumps({"run_date": RUN_DATE})], warehouse, workdir
        )
        yield Build(warehouse=warehouse, target=workdir / "target", result=result)


def features(build: Build) -> dict[str, dict[str, Any]]:
    rows = build.rows("select * from marts.customer_features")
    return {row["customer_id"]: row for row in rows}


def test_dbt_build_passes_on_fresh_warehouse(build: Build) -> None:
    assert build.result.returncode == 0, build.result.stdout[-5000:] + build.result.stderr
    assert "Completed successfully" in build.result.stdout
    for deprecation in ("Deprecat", "deprecat"):
        assert deprecation not in build.result.stdout, build.result.stdout
    results = json.loads((build.target / "run_results.json").read_text())["results"]
    statuses = {r["status"] for r in results}
    assert statuses <= {"success", "pass", "no-op"}, statuses  # no-op: the exposure


def test_marts_land_in_schema_marts(build: Build) -> None:
    tables = build.rows(
        "select table_schema, table_name from information_schema.tables "
        "where table_schema in ('staging', 'intermediate', 'marts', 'seeds')"
    )
    marts = {t["table_name"] for t in tables if t["table_schema"] == "marts"}
    assert {
        "customer_features",
        "decision_rewards",
        "agent_group_outcomes",
        "dq_excluded_rows",
        "dq_exclusion_counts",
    } <= marts
    assert "stg_raw__customers" in {
        t["table_name"] for t in tables if t["table_schema"] == "staging"
    }


def test_excluded_rows_are_listed_with_reason_codes(build: Build) -> None:
    rows = build.rows(
        "select source_table, row_key, reason_code, action from marts.dq_excluded_rows"
    )
    listed = {(r["source_table"], r["row_key"], r["reason_code"], r["action"]) for r in rows}
    assert listed == {
        ("raw.customers", "(null)", "null_customer_id", "row_excluded"),
        ("raw.customers", "c4", "unknown_time_zone", "row_excluded"),
        ("raw.customers", "c5", "duplicate_customer_id", "row_excluded"),
        ("raw.customers", "c2", "malformed_email", "value_nulled"),
        ("raw.customers", "c3", "malformed_phone", "value_nulled"),
        ("raw.orders", "(null)", "null_order_id", "row_excluded"),
        ("raw.orders", "o2", "duplicate_order_id", "row_excluded"),
        ("raw.orders", "o_neg", "negative_amount", "row_excluded"),
        ("raw.orders", "o_null_amount", "null_amount", "row_excluded"),
        ("raw.orders", "o_nan", "invalid_amount", "row_excluded"),
        ("raw.orders", "o_toys", "unknown_category", "row_excluded"),
        ("raw.orders", "o_neg_discount", "negative_discount", "row_excluded"),
        ("raw.orders", "o_nan_discount", "invalid_discount", "row_excluded"),
        ("raw.orders", "o_no_customer", "null_customer_id", "row_excluded"),
        ("raw.consents", "c1|fax|2024-01-01 12:00:00", "unknown_channel", "row_excluded"),
        ("raw.consents", "c2|email|2024-01-01 12:00:00", "unknown_status", "row_excluded"),
        ("raw.message_events", "(null)", "null_event_id", "row_excluded"),
        ("raw.message_events", "ev1", "duplicate_event_id", "row_excluded"),
        ("raw.message_events", "ev_bad", "unknown_event_type", "row_excluded"),
    }
    counts = build.rows("select * from marts.dq_exclusion_counts")
    by_reason = {(c["source_table"], c["reason_code"]): c["row_count"] for c in counts}
    assert by_reason[("raw.orders", "null_customer_id")] == 1
    assert sum(by_reason.values()) == len(rows)


def test_bad_customers_are_absent_or_have_contact_nulled(build: Build) -> None:
    by_id = features(build)
    assert set(by_id) == {"c1", "c2", "c3", "c5"}  # c4 bad time zone, c6 not signed up yet
    assert by_id["c2"]["email"] is None and by_id["c2"]["phone"] == "+4915112345678"
    assert by_id["c3"]["phone"] is None and by_id["c3"]["email"] == "carol@example.org"
    assert by_id["c5"]["email"] == "new@example.com"
    assert by_id["c5"]["time_zone"] == "Asia/Tokyo"
    assert by_id["c1"]["email"] == "alice@example.com"
    assert by_id["c1"]["country"] == "US"


def test_customer_features_hand_computed(build: Build) -> None:
    c1 = features(build)["c1"]
    # orders o1 (Jan 10), o2 (Feb 10, its 999 duplicate dropped), o3 (Feb 25); o4 is at as-of
    assert c1["order_count"] == 3
    assert c1["orders_last_90d"] == 3
    assert c1["total_revenue"] == pytest.approx(100.0)
    assert c1["avg_order_value"] == pytest.approx(100.0 / 3)
    assert c1["days_since_last_order"] == 5  # 2024-02-25 -> 2024-03-01 (leap year)
    # three orders at 10:00 UTC = 05:00 in New York (EST): direction 5 h, length 3 / (3 + 1)
    angle = 5 * math.pi / 12
    assert c1["order_hour_cos"] == pytest.approx(0.75 * math.cos(angle))
    assert c1["order_hour_sin"] == pytest.approx(0.75 * math.sin(angle))
    # active hours: those orders, and the first open / click of dB (18:00 UTC = 13:00 EST, three
    # hours after its send) and of the newsletter cmp-1 (20:00 UTC = 15:00, five hours after its
    # delivery); dA's open came 59 minutes after delivery (under the 2-hour delay): five moments,
    # one pseudo-moment
    moments = [5, 5, 5, 13, 15]
    for column, trig in (("active_hour_cos", math.cos), ("active_hour_sin", math.sin)):
        expected = sum(trig(h * math.pi / 12) for h in moments) / (len(moments) + 1)
        assert c1[column] == pytest.approx(expected)
    assert c1["has_ordered"] == 1
    assert c1["tenure_days"] == 60
    assert c1["ipi_mean_days"] == pytest.approx(23.0)  # intervals 31 and 15 days
    assert c1["ipi_std_days"] == pytest.approx(math.sqrt(128.0))
    # consent: e-mail opted in; SMS opted out later; push opted in with a token
    assert (c1["consent_email"], c1["consent_sms"], c1["consent_push"]) == (True, False, True)
    # messages: dA (Feb 27 15:00) in the last 7 days, dB (Feb 20) in 30 days, dC failed
    assert c1["messages_last_1d"] == 0
    assert c1["messages_last_7d"] == 1
    assert c1["messages_last_30d"] == 2
    assert c1["email_messages_last_7d"] == 1 and c1["sms_messages_last_7d"] == 0
    assert c1["last_message_at"] == datetime(2024, 2, 27, 15, 0)
    assert c1["hours_since_last_message"] == pytest.approx(57.0)  # Feb 27 15:00 -> Mar 1
    # affinities: 2 of 3 orders apparel, smoothed with 2 pseudo-orders at the population share
    population_apparel = 2 / 4  # valid orders before as-of: o1, o2, o3 (c1) and o5 (c3)
    assert c1["affinity_apparel"] == pytest.approx((2 + 2 * population_apparel) / (3 + 2))
    # discounts: o1 had one (o2's is 0, o3's NULL; o4 is at as-of), as had c3's o5: 2 of 4
    # valid orders, the population share; 2 pseudo-orders
    assert c1["discounted_order_share"] == pytest.approx((1 + 2 * 0.5) / (3 + 2))
    assert features(build)["c3"]["discounted_order_share"] == pytest.approx((1 + 2 * 0.5) / (1 + 2))
    # e-mail opens: all three of c1's e-mails opened (dA, dB and the newsletter cmp-1, which
    # journeyman did not send); the prior is the smoothed population rate
    prior = (3 + 0.16 * 100) / (3 + 100)
    assert c1["email_open_rate"] == pytest.approx((3 + 10 * prior) / (3 + 10))
    # responses per kind of message, with each message's tags as they stood on its decision day:
    # c1 clicked dB (m1 on Feb 20, then 10 % off) but not dA (m1 on Feb 27, no offer by then);
    # c3 did not answer dE (m2, a discount); the newsletter is not journeyman's. Population priors:
    offer_prior = (1 + 0.03 * 100) / (2 + 100)
    no_offer_prior = (0 + 0.03 * 100) / (1 + 100)
    assert c1["offer_response_rate"] == pytest.approx((1 + 10 * offer_prior) / (1 + 10))
    assert c1["no_offer_response_rate"] == pytest.approx((0 + 10 * no_offer_prior) / (1 + 10))
    c3 = features(build)["c3"]
    assert c3["offer_response_rate"] == pytest.approx((0 + 10 * offer_prior) / (1 + 10))
    assert c3["no_offer_response_rate"] == pytest.approx(no_offer_prior)  # never sent one


def test_customer_agent_contacts_hold_each_agents_own_sends(build: Build) -> None:
    rows = build.rows("select * from marts.customer_agent_contacts order by customer_id, agent")
    by_key = {(r["customer_id"], r["agent"]): r for r in rows}
    sent = build.rows(
        "select customer_id, agent, count(*) as n from intermediate.int_messages_sent "
        "group by customer_id, agent"
    )
    assert set(by_key) == {(r["customer_id"], r["agent"]) for r in sent}
    # c1: winback's dA (Feb 27 15:00) and dB (Feb 20) were delivered, dC failed
    c1 = by_key[("c1", "winback")]
    assert c1["messages_last_30d"] == 2
    assert c1["last_message_at"] == datetime(2024, 2, 27, 15, 0)
    assert c1["hours_since_last_message"] == pytest.approx(57.0)
    assert not any(customer == "c2" for customer, _ in by_key)  # never sent a message


def test_customer_without_history_gets_defaults(build: Build) -> None:
    by_id = features(build)
    c2, c3 = by_id["c2"], by_id["c3"]
    assert (c2["consent_email"], c2["consent_sms"], c2["consent_push"]) == (False, True, False)
    # c3: SMS opted in but the phone is malformed; the e-mail opt-in is after as-of
    assert (c3["consent_email"], c3["consent_sms"]) == (False, False)
    assert c3["unsubscribed_sms"] is True
    assert c2["order_count"] == 0 and c2["has_ordered"] == 0
    assert c2["days_since_last_order"] == c2["tenure_days"] == 29
    assert c2["hours_since_last_message"] == 8760.0
    assert c2["last_message_at"] is None
    assert c2["email_open_rate"] == pytest.approx((3 + 0.16 * 100) / (3 + 100))
    assert c2["ipi_mean_days"] == pytest.approx(23.0)  # population mean (only c1 has 2+ orders)
    assert c2["order_hour_cos"] == c2["order_hour_sin"] == 0.0  # no orders: no direction
    assert c2["active_hour_cos"] == c2["active_hour_sin"] == 0.0
    assert c2["discounted_order_share"] == pytest.approx(0.5)  # the population share
    for column in FEATURE_COLUMNS:
        assert c2[column] is not None, column


def test_manifest_marks_feature_columns(build: Build) -> None:
    manifest = json.loads((build.target / "manifest.json").read_text())
    columns = manifest["nodes"]["model.journeyman.customer_features"]["columns"]
    marked = {
        name for name, column in columns.items() if column["config"]["meta"].get("feature") is True
    }
    assert marked == FEATURE_COLUMNS
    assert {n for n, c in columns.items() if c["meta"].get("feature") is True} == marked
    for name in ("customer_id", "email", "consent_email", "signup_at", "last_message_at"):
        assert name in columns and name not in marked


GENERATED_COLUMN_MODELS = {"arm_statistics_daily", "stg_journeyman__decision_features"}


def feature_columns(manifest: dict) -> set[str]:
    node = manifest["nodes"]["model.journeyman.customer_features"]
    return {
        name
        for name, column in node["columns"].items()
        if (column.get("config") or {}).get("meta", {}).get("feature")
    }


def test_every_model_and_column_is_documented(build: Build) -> None:
    manifest = json.loads((build.target / "manifest.json").read_text())
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    assert len(models) >= 20
    for node in models:
        assert node["description"].strip(), node["unique_id"]
        documented = {
            name for name, column in node["columns"].items() if column["description"].strip()
        }
        in_warehouse = {
            row["column_name"]
            for row in build.rows(
                "select column_name from information_schema.columns "
                f"where table_schema = '{node['schema']}' and table_name = '{node['alias']}'"
            )
        }
        assert in_warehouse, node["unique_id"]
        # Columns generated from the feature list are documented once, by pattern, in the
        # model's description (they change whenever a feature is added).
        generated = set()
        if node["name"] in GENERATED_COLUMN_MODELS:
            generated = {
                c
                for c in in_warehouse
                if c.startswith(("x__", "xr__", "xx__")) or c in feature_columns(manifest)
            }
            assert generated, node["unique_id"]
        assert in_warehouse - generated == documented, (
            node["unique_id"],
            (in_warehouse - generated) ^ documented,
        )


def test_unit_tests_ran_and_passed(build: Build) -> None:
    results = json.loads((build.target / "run_results.json").read_text())["results"]
    unit = {r["unique_id"]: r["status"] for r in results if r["unique_id"].startswith("unit_test.")}
    assert len(unit) >= 5
    assert set(unit.values()) == {"pass"}


def test_decision_rewards_only_closed_windows(build: Build) -> None:
    rows = {r["decision_id"]: r for r in build.rows("select * from marts.decision_rewards")}
    # dA's window ends 2024-03-01 15:00 and dC's 2024-03-03 18:00: both still open
    assert set(rows) == {"dB", "dD", "dE"}
    assert rows["dB"]["converted"] == 0  # o3 on Feb 25 is after dB's window (Feb 23 15:00)
    assert rows["dD"]["reference_at"] == datetime(2024, 2, 10)
    assert rows["dD"]["window_end"] == datetime(2024, 2, 17)
    assert rows["dE"]["orders"] == 1 and rows["dE"]["reward"] == pytest.approx(10.0)
    assert rows["dE"]["unsubscribed"] == 1
    # engagement: dB was opened and clicked (the click counts), dE (SMS) neither, dD sent nothing
    assert (rows["dB"]["engagement"], rows["dE"]["engagement"], rows["dD"]["engagement"]) == (
        2,
        0,
        0,
    )


def test_arm_statistics_keep_the_decisions_with_an_order_apart(build: Build) -> None:
    """One row per agent × action × day × engagement × ordered: dE's order (revenue goal, $10;
    its unsubscribe carries no penalty here) in an ordered row, what a revenue goal's hurdle
    learns P(order) and the order value from; the loader splits them out."""
    rows = build.rows("select * from marts.arm_statistics_daily")
    got = {
        (r["action_id"], r["ordered"]): (r["n"], r["sum_r"], r["sum_rr"], r["x__order_count"])
        for r in rows
    }
    assert got == {
        ("a_email", 0): (1, 0.0, 0.0, 1.0),  # dB: clicked, no order in its window
        ("no_send", 0): (1, 0.0, 0.0, 2.0),  # dD: held out
        ("a_sms", 1): (1, 10.0, 100.0, 3.0),  # dE: o5, $10
    }
    assert {r["action_id"]: str(r["available_on"]) for r in rows}["a_sms"] == "2024-03-01"
    features = ["order_count"]
    stats = load_arm_statistics(
        Warehouse(build.warehouse, read_only=True), "winback", date(2024, 3, 1), features
    )
    assert stats.action_ids == ["a_email", "a_sms", "no_send"]
    assert stats.ordered is not None
    assert stats.ordered.n.tolist() == [0.0, 1.0, 0.0]
    assert stats.ordered.xr[:, 0].tolist() == [0.0, 10.0, 0.0]  # Σr of the orders: their value
    assert stats.order_indicator().xr[:, 1].tolist() == [0.0, 3.0, 0.0]  # Σx·c
    surrogate = load_arm_statistics(
        Warehouse(build.warehouse, read_only=True),
        "winback",
        date(2024, 3, 1),
        features,
        signal="surrogate",
    )
    assert surrogate.ordered is None


def test_agent_group_outcomes_intention_to_treat(build: Build) -> None:
    rows = build.rows("select * from marts.agent_group_outcomes")
    groups = {(r["agent"], r["policy"], r["experiment_group"]): r for r in rows}
    assert set(groups) == {("winback", "thompson", "treatment"), ("winback", "thompson", "holdout")}
    treatment = groups[("winback", "thompson", "treatment")]
    assert treatment["customers"] == 2  # c1, c3 (c2's only treatment decision is not_eligible)
    assert treatment["decisions"] == 4
    assert treatment["messages_sent"] == 3
    assert treatment["conversions"] == 2  # o3 (c1, Feb 25) and o5 (c3, Feb 28)
    assert treatment["revenue"] == pytest.approx(30.0)
    assert treatment["revenue_per_customer"] == pytest.approx(15.0)
    assert treatment["unsubscribes"] == 1
    holdout = groups[("winback", "thompson", "holdout")]
    assert (holdout["customers"], holdout["conversions"], holdout["messages_sent"]) == (1, 0, 0)


def test_history_data_tests_read_the_recent_rows_unless_told_otherwise(tmp_path: Path) -> None:
    """A daily build tests the decisions of the last `data_test_window_days` (the earlier ones
    were tested by their own days' builds); a duplicate decision inside that window fails the
    build, one outside fails only a full test (`data_test_window_days: null`)."""
    columns = (
        "decision_id, agent, decision_date, customer_id, policy, policy_version, "
        "experiment_group, exclusion_reason, goal_metric, attribution_window_days, created_at"
    )

    def duplicate(decision_date: str) -> list[tuple]:
        row = ("dup", "winback", decision_date, "c-dup", "p", "v1", "treatment", "holdout",
               "conversion", 7, f"{decision_date} 00:10:00")  # fmt: skip
        return [row, row]

    select = ["--select", "stg_journeyman__decisions", "--indirect-selection", "cautious"]
    for name, day, window, fails in (
        ("old", "2024-01-15", None, False),
        ("old_full", "2024-01-15", "null", True),
        ("recent", "2024-02-28", None, True),
    ):
        location = tmp_path / f"{name}.duckdb"
        load_fixture(location)
        with Warehouse(location).connect() as conn:
            _insert(conn, "journeyman.decisions", duplicate(day), columns)
        variables = f"{{run_date: {RUN_DATE}" + (
            f", data_test_window_days: {window}}}" if window else "}"
        )
        result = run_dbt(["build", *select, "--vars", variables], location, tmp_path / name)
        assert (result.returncode != 0) == fails, (name, result.stdout[-3000:])
        if fails:
            assert "unique_stg_journeyman__decisions_decision_id" in result.stdout


def test_incremental_rewards_equal_a_full_build(tmp_path: Path) -> None:
    """The incremental models built day after day hold exactly the rows of one full build:
    decision_rewards and decision_learning_rewards (each build adds the windows closed since
    the last), int_messages_delivered (each replaces the messages touched lately),
    agent_preferences, delivery_diagnostics and agent_group_member_days (each replaces the days
    since the last) and base_raw__message_events."""
    days = ["2024-02-20", "2024-02-27", RUN_DATE]
    tables = {}
    for name, dates in (("daily", days), ("full", [RUN_DATE])):
        location = tmp_path / f"{name}.duckdb"
        load_fixture(location)
        for day in dates:
            result = run_dbt(["build", "--vars", f"{{run_date: {day}}}"], location, tmp_path / name)
            assert result.returncode == 0, result.stdout[-3000:]
        warehouse = Warehouse(location)
        tables[name] = {
            model: [tuple(r) for r in warehouse.rows(f"select * from {model} order by all")]
            for model in (
                "marts.decision_rewards",
                "marts.decision_learning_rewards",
                "intermediate.int_messages_delivered",
                "staging.base_raw__message_events",
                "marts.agent_preferences",
                "marts.delivery_diagnostics",
                "marts.agent_group_member_days",
            )
        }
    assert tables["daily"] == tables["full"]
    assert len(tables["full"]["marts.decision_rewards"]) >= 3
    assert len(tables["full"]["intermediate.int_messages_delivered"]) >= 3


# (loaded, rows) loaded after the fixture, between the daily builds of the test below
LATE_EVENTS = [
    (
        "2024-03-01 06:00:00",
        [
            ("ev3", "dA", "c1", "email", "open", "2024-02-27 16:00:00"),  # a copy: a duplicate
            ("evb1", "cmp-2", "c2", "email", "open", "2024-02-29 09:00:00"),  # its delivery: later
            ("evf", "cmp-3", "c2", "email", "delivered", "2024-03-03 12:00:00"),  # ahead of loads
        ],
    ),
    (None, [("evn", "dA", "c1", "email", "click", "2024-02-27 16:30:00")]),  # no load time
    ("2024-03-01 12:00:00", [("evx", "dA", "c1", "email", "click", "2024-02-27 16:40:00")]),
    (
        "2024-03-02 06:00:00",
        [
            ("evb2", "cmp-2", "c2", "email", "delivered", "2024-02-29 08:00:00"),
            ("evn", "dA", "c1", "email", "click", "2024-02-27 16:30:00"),  # evn's loaded copy
            ("evc", "cmp-1", "c1", "email", "click", "2024-03-02 05:00:00"),  # on an old message
        ],
    ),
]


def _load_late_events(location: str, batches: list[int]) -> None:
    """Insert these batches of LATE_EVENTS."""
    with Warehouse(location).connect() as conn:
        for i in batches:
            loaded, events = LATE_EVENTS[i]
            _insert(conn, "raw.message_events", [(*e, loaded) for e in events])


@pytest.mark.parametrize("backend", backend_params())
def test_incremental_message_events_equal_a_full_build(backend: str, tmp_path: Path) -> None:
    """base_raw__message_events and int_messages_delivered built day after day (each build
    checks the rows loaded since the last; raw_reload_days 0) hold exactly the rows of one full
    build: a later copy of an old event is a duplicate, an open whose delivery arrives a day
    later and an event dated ahead of the as-of are excluded until then and re-checked by the
    later build, an unstamped row ranks after the stamped copy loaded after it, and a click on
    a weeks-old message counts."""
    plans = {
        "daily": [(RUN_DATE, []), ("2024-03-02", [0, 1, 2]), ("2024-03-05", [3])],
        "full": [("2024-03-05", [0, 1, 2, 3])],
    }
    out, messages = {}, {}
    for name in ("daily", "full"):
        with new_warehouse(backend, tmp_path / name, name) as location:
            (tmp_path / name).mkdir(exist_ok=True)
            load_fixture(location)
            for day, batches in plans[name]:
                _load_late_events(location, batches)
                build = [
                    "build",
                    "-s",
                    "+int_messages_delivered",
                    "--indirect-selection",
                    "cautious",
                ]
                variables = json.dumps({"run_date": day, "raw_reload_days": 0})
                result = run_dbt([*build, "--vars", variables], location, tmp_path / name)
                assert result.returncode == 0, result.stdout[-3000:]
                if day == "2024-03-02":
                    early = dict(
                        Warehouse(location).rows(
                            "select event_id, exclusion_reason from "
                            "staging.base_raw__message_events where event_id in ('evb1', 'evf')"
                        )
                    )
                    assert early == {"evb1": "unknown_decision", "evf": "future_occurred_at"}
            messages[name] = Warehouse(location).rows(
                "select * from intermediate.int_messages_delivered order by decision_id"
            )
            out[name] = sorted(
                (
                    tuple(r)
                    for r in Warehouse(location).rows(
                        "select event_id, decision_id, customer_id, channel, event_type, "
                        "occurred_at, loaded_at, exclusion_reason "
                        "from staging.base_raw__message_events"
                    )
                ),
                key=lambda row: tuple("" if v is None else str(v) for v in row),
            )
    assert out["daily"] == out["full"]
    assert messages["daily"] == messages["full"]
    clicked = {r.decision_id: (r.was_opened, r.was_clicked) for r in messages["full"]}
    assert clicked["cmp-1"] == (1, 1) and clicked["cmp-2"] == (1, 0)
    reasons = {(r[0], r[6] is None): r[7] for r in out["full"] if r[0] in ("evb1", "evf", "evn")}
    assert reasons == {
        ("evb1", False): None,
        ("evf", False): None,
        ("evn", True): "duplicate_event_id",
        ("evn", False): None,
    }
    duplicates = [r for r in out["full"] if r[0] == "ev3" and r[7] == "duplicate_event_id"]
    assert len(duplicates) == 1


def test_run_date_defaults_to_today_utc(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    result = run_dbt(["compile", "--inline", "select {{ as_of() }} as as_of"], warehouse, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert f"cast('{today} 00:00:00' as timestamp)" in result.stdout


def test_run_date_env_var_is_the_fallback(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    result = run_dbt(
        ["compile", "--inline", "select {{ as_of() }} as as_of"],
        warehouse,
        tmp_path,
        run_date_env="2024-02-29",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cast('2024-02-29 00:00:00' as timestamp)" in result.stdout


def test_malformed_run_date_is_a_clear_error(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    result = run_dbt(
        ["compile", "--inline", "select {{ as_of() }}", "--vars", '{"run_date": "03/01/2024"}'],
        warehouse,
        tmp_path,
    )
    assert result.returncode != 0
    assert "run_date must be a date 'YYYY-MM-DD'" in result.stdout + result.stderr


@pytest.mark.parametrize("backend", backend_params())
def test_optional_source_columns_may_be_missing(backend: str, tmp_path: Path) -> None:
    """raw.orders.discount_amount is optional (every order then counts as undiscounted), and a
    warehouse journeyman has not run on since upgrading has no message-tag history columns."""
    with new_warehouse(backend, tmp_path, "optional") as warehouse:
        load_fixture(warehouse)
        Warehouse(warehouse).execute(
            "alter table raw.orders drop column discount_amount;\n"
            # an older journeyman kept one row per tag, the current value
            "delete from journeyman.message_tags where valid_to is not null;\n"
            "alter table journeyman.message_tags drop column valid_from;\n"
            "alter table journeyman.message_tags drop column valid_to"
        )
        result = run_dbt(
            [
                "build",
                "--select",
                "+stg_raw__orders +stg_journeyman__message_tags",
                "--vars",
                json.dumps({"run_date": RUN_DATE}),
            ],
            warehouse,
            tmp_path,
        )
        assert result.returncode == 0, result.stdout[-5000:] + result.stderr
        reader = Warehouse(warehouse, read_only=True)
        orders = reader.rows("select count(*), sum(discount_amount) from staging.stg_raw__orders")
        tags = reader.rows(
            "select count(*), min(valid_from), count(valid_to) "
            "from staging.stg_journeyman__message_tags"
        )
    # o1 to o5 and the two rows excluded above for their discount only, none discounted
    assert [tuple(r) for r in orders] == [(7, 0.0)]
    current = sum(1 for row in MESSAGE_TAGS if row[5] is None)
    assert [tuple(r) for r in tags] == [(current, date(1900, 1, 1), 0)]  # all current, since ever
