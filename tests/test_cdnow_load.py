"""`journeyman load cdnow`: CDNOW-format transactions into raw.orders / raw.customers /
raw.consents on real DuckDB files — bad lines reported and skipped, dates and time zones right,
a second load refused or replaced, nothing left behind by a failure, and dbt staging accepts
every loaded row."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner
from test_dbt_project import run_dbt

from journeyman import settings
from journeyman.orchestration.load_command import load
from journeyman.sandbox import cdnow
from journeyman.sandbox.regions import COUNTRIES, TIME_ZONES
from journeyman.tables import ensure_journeyman_tables
from journeyman.warehouse import Warehouse

CDNOW = settings.PROJECT_ROOT.parent / "shared" / "datasets" / "cdnow" / "CDNOW_master.txt"
SHIFT_TO = date(2026, 3, 2)

# the file's header, CRLF line ends, a blank line, good lines and one of each malformed kind
SMALL = [
    " customer_id  date number_of_cds  dollar_value",  # 1: header
    " 00001 19970101  1   11.77",  # 2
    " 00001 19970101  2   20.00",  # 3: the customer's second line that day
    " 00002 19970715  1   12.00",  # 4: summer (DST in the north)
    "",  # 5: blank, ignored
    " 00003 19970230  1    5.00",  # 6: no such date
    " 00003 19970301  1.5  5.00",  # 7: non-integer count
    " 00003 19970301  1    abc",  # 8: non-numeric amount
    " 00003 19970301  1   -5.00",  # 9: negative amount
    " 00003 19970301  1",  # 10: three fields
    " x3 19970301  1    5.00",  # 11: customer id not a number
    " 00003 19970302  3    0.00",  # 12: a free order
    " 00004 19980630  1 1286.01",  # 13: the last day
]
BAD = {
    6: "date '19970230' is not a valid YYYYMMDD date",
    7: "number_of_cds '1.5' is not a whole number >= 0",
    8: "dollar_value 'abc' is not a finite number",
    9: "dollar_value '-5.00' is negative",
    10: "expected 4 fields (customer_id date number_of_cds dollar_value), found 3",
    11: "customer_id 'x3' is not a whole number",
}
GOOD = {  # order id → (customer, file date, amount)
    "cdnow-00001-19970101-1": ("cdnow-00001", date(1997, 1, 1), 11.77),
    "cdnow-00001-19970101-2": ("cdnow-00001", date(1997, 1, 1), 20.00),
    "cdnow-00002-19970715-1": ("cdnow-00002", date(1997, 7, 15), 12.00),
    "cdnow-00003-19970302-1": ("cdnow-00003", date(1997, 3, 2), 0.00),
    "cdnow-00004-19980630-1": ("cdnow-00004", date(1998, 6, 30), 1286.01),
}


def _file(folder: Path, lines: list[str], name: str = "cdnow.txt") -> Path:
    path = folder / name
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return path


def _load(warehouse: Path, *args: str):
    env = {settings.WAREHOUSE_ENV: str(warehouse)}
    return CliRunner().invoke(load, ["cdnow", *args], env=env, catch_exceptions=False)


def _rows(warehouse: Path, sql: str) -> list[dict]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        cursor = conn.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _snapshot(warehouse: Path, with_loaded_at: bool = True) -> dict[str, list[tuple]]:
    """Every raw table's rows, sorted (without _loaded_at on request)."""
    out = {}
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        for table in ("customers", "orders", "consents", "message_events"):
            exclude = "" if with_loaded_at else " exclude (_loaded_at)"
            rows = conn.execute(f"select *{exclude} from raw.{table}").fetchall()
            out[table] = sorted(rows, key=repr)
    return out


def _one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def _foreign_rows(warehouse: Path) -> None:
    """Rows another source loaded: never touched by a CDNOW load, a replace or a failure."""
    Warehouse(warehouse).execute(
        cdnow.RAW_TABLES_DDL
        + ";\ninsert into raw.customers values ('c1', 'a@example.com', null, null, 'UTC', 'GB', "
        "'2024-01-01', '2024-01-02');\n"
        "insert into raw.orders values ('o1', 'c1', '2024-01-05', 10.0, null, 'home', "
        "'2024-01-06');\n"
        "insert into raw.consents values ('c1', 'email', 'opted_in', '2024-01-01', '2024-01-02')"
    )


# -- parsing and the loaded rows -------------------------------------------------------------


def test_small_file_loads_good_lines_and_lists_bad_ones(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    result = _load(warehouse, str(_file(tmp_path, SMALL)))
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"warning: skipped line {n}: {reason}" for n, reason in BAD.items()
    ]
    summary = result.stdout.strip()
    assert re.fullmatch(
        r"cdnow: 11 lines read, 5 orders loaded, 4 customers, 6 lines skipped; orders "
        r"1996-12-3\d to 1998-0[67]-\d\d \(UTC\) in \d+\.\d s",
        summary,
    ), summary
    orders = {r["order_id"]: r for r in _rows(warehouse, "select * from raw.orders")}
    assert orders.keys() == GOOD.keys()
    for order_id, (customer, _, amount) in GOOD.items():
        row = orders[order_id]
        assert (row["customer_id"], row["amount"]) == (customer, amount)
        assert row["discount_amount"] is None and row["category"] == cdnow.CATEGORY
        assert row["_loaded_at"] > datetime(2026, 1, 1)


def test_ordered_at_is_the_file_date_in_the_customers_time_zone(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    assert _load(warehouse, str(_file(tmp_path, SMALL))).exit_code == 0
    zones = {
        r["customer_id"]: ZoneInfo(r["time_zone"])
        for r in _rows(warehouse, "select customer_id, time_zone from raw.customers")
    }
    for row in _rows(warehouse, "select order_id, customer_id, ordered_at from raw.orders"):
        local = row["ordered_at"].replace(tzinfo=UTC).astimezone(zones[row["customer_id"]])
        assert local.date() == GOOD[row["order_id"]][1], row


@pytest.mark.parametrize(
    ("zone", "local", "utc"),
    [
        ("America/New_York", datetime(1997, 1, 15, 10), datetime(1997, 1, 15, 15)),  # EST
        ("America/New_York", datetime(1997, 7, 15, 10), datetime(1997, 7, 15, 14)),  # EDT
        ("America/New_York", datetime(1997, 4, 6, 2, 30), datetime(1997, 4, 6, 7, 30)),  # gap
        ("America/New_York", datetime(1997, 10, 26, 1, 30), datetime(1997, 10, 26, 5, 30)),
        ("Europe/Berlin", datetime(1997, 3, 30, 12), datetime(1997, 3, 30, 10)),  # CEST that day
        ("Australia/Sydney", datetime(1997, 1, 1, 9), datetime(1996, 12, 31, 22)),  # AEDT
        ("Australia/Sydney", datetime(1997, 7, 1, 9), datetime(1997, 6, 30, 23)),  # AEST
        ("America/Sao_Paulo", datetime(1997, 10, 6, 0, 30), datetime(1997, 10, 6, 3, 30)),
        ("Asia/Kolkata", datetime(1998, 6, 30, 23, 59, 59), datetime(1998, 6, 30, 18, 29, 59)),
    ],
)
def test_local_times_convert_to_utc_with_the_tz_database(zone, local, utc):
    """Fold 0 in a gap or a repeated hour, as zoneinfo: the offset before the change."""
    region = np.array([TIME_ZONES.index(zone)])
    day = np.array([np.datetime64(local.date(), "D")])
    seconds = np.array([local.hour * 3600 + local.minute * 60 + local.second])
    assert cdnow.local_to_utc(region, day, seconds)[0] == np.datetime64(utc, "s")


def test_customers_and_consents_are_synthetic_and_labelled(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    assert _load(warehouse, str(_file(tmp_path, SMALL))).exit_code == 0
    customers = _rows(warehouse, "select * from raw.customers order by customer_id")
    assert [c["customer_id"] for c in customers] == [f"cdnow-0000{i}" for i in range(1, 5)]
    first = {
        r["customer_id"]: r["t"]
        for r in _rows(
            warehouse, "select customer_id, min(ordered_at) t from raw.orders group by 1"
        )
    }
    for c in customers:
        cid = c["customer_id"]
        assert c["email"] in (None, f"{cid}@example.invalid")
        assert c["phone"] is None or re.fullmatch(r"\+1[2-9][0-8]\d55501\d\d", c["phone"])
        assert c["push_token"] in (None, f"synthetic-{cid}")
        assert COUNTRIES[TIME_ZONES.index(c["time_zone"])] == c["country"]
        gap = (first[cid] - c["signup_at"]).total_seconds()
        assert 0 <= gap <= cdnow.SIGNUP_MAX_DAYS * 86_400
    consents = _rows(warehouse, "select * from raw.consents")
    contact = {"email": "email", "sms": "phone", "push": "push_token"}
    reachable = {(c["customer_id"], ch) for c in customers for ch, col in contact.items() if c[col]}
    assert {(r["customer_id"], r["channel"]) for r in consents} == reachable
    signup = {c["customer_id"]: c["signup_at"] for c in customers}
    for r in consents:
        assert r["status"] in ("opted_in", "opted_out")
        assert r["recorded_at"] == signup[r["customer_id"]]


def test_draws_depend_on_the_seed_and_the_customer_only():
    """A customer's rows are the same whatever else the file holds; another seed moves them."""
    loaded = datetime(2026, 1, 1)
    whole = cdnow.build_tables(cdnow.parse_transactions("\n".join(SMALL)), seed=7, loaded=loaded)
    alone = cdnow.build_tables(cdnow.parse_transactions(SMALL[3]), seed=7, loaded=loaded)
    for table in ("orders", "customers", "consents"):
        rows = getattr(whole, table).to_pylist()
        expected = [r for r in rows if r["customer_id"] == "cdnow-00002"]
        assert getattr(alone, table).to_pylist() == expected, table
    other = cdnow.build_tables(cdnow.parse_transactions("\n".join(SMALL)), seed=8, loaded=loaded)
    assert other.orders.column("ordered_at") != whole.orders.column("ordered_at")
    assert other.customers.column("time_zone") != whole.customers.column("time_zone")


def test_shift_to_puts_the_last_order_on_the_day_before(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    result = _load(warehouse, str(_file(tmp_path, SMALL)), "--shift-to", str(SHIFT_TO))
    assert result.exit_code == 0, result.output
    rows = _rows(
        warehouse,
        "select o.order_id, o.ordered_at, c.time_zone from raw.orders o "
        "join raw.customers c using (customer_id)",
    )
    last = max(r["ordered_at"] for r in rows)
    assert last.date() == date(2026, 3, 1)
    shifts = set()
    for r in rows:
        local = r["ordered_at"].replace(tzinfo=UTC).astimezone(ZoneInfo(r["time_zone"]))
        shifts.add((local.date() - GOOD[r["order_id"]][1]).days)
    assert len(shifts) == 1  # every date moved by the same whole number of days
    assert f"(UTC, shifted by +{shifts.pop():,} days)" in result.stdout


def test_at_most_twenty_bad_lines_are_listed_then_a_count(tmp_path):
    lines = [" 00001 19970101 1 1.00"] + [f" 00002 1997010{i % 9 + 1} 1 -1" for i in range(25)]
    result = _load(tmp_path / "w.duckdb", str(_file(tmp_path, lines)))
    assert result.exit_code == 0, result.output
    warnings = result.stderr.splitlines()
    assert len(warnings) == 21 and warnings[0].startswith("warning: skipped line 2: ")
    assert warnings[19].startswith("warning: skipped line 21: ")
    assert warnings[20] == "warning: skipped 5 more malformed lines"
    assert "26 lines read, 1 orders loaded, 1 customers, 25 lines skipped" in result.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("dir", "is a directory"),
        (b"", "has no valid CDNOW line (0 data lines)"),
        (b" customer_id date number_of_cds dollar_value\n", "has no valid CDNOW line"),
        (b"00001 1997 1 2.0\n", "line 1: date '1997' is not a valid YYYYMMDD date"),
        (b"\x00\xff\xfe garbage 1\n", "line 1: expected 4 fields"),
    ],
)
def test_a_file_without_a_valid_line_is_one_error_line(tmp_path, content, message):
    path = tmp_path / "input.txt"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    warehouse = tmp_path / "w.duckdb"
    line = _one_error_line(_load(warehouse, str(path)))
    assert message in line and str(path) in line, line
    assert not warehouse.exists()


# -- idempotence and atomicity ---------------------------------------------------------------


def test_a_second_load_is_refused_and_replace_reloads(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    path = _file(tmp_path, SMALL)
    _foreign_rows(warehouse)
    assert _load(warehouse, str(path)).exit_code == 0
    before = _snapshot(warehouse)
    line = _one_error_line(_load(warehouse, str(path)))
    assert "already loaded: 5 orders with ids cdnow-… and 4 customers; pass --replace" in line
    assert _snapshot(warehouse) == before
    again = _load(warehouse, str(path), "--replace")
    assert again.exit_code == 0, again.output
    assert "5 orders loaded" in again.stdout and "replacing 5 orders" in again.stdout
    assert _snapshot(warehouse, with_loaded_at=False) == {
        t: sorted((r[:-1] for r in rows), key=repr) for t, rows in before.items()
    }


def _fail_after(table: str):
    def hook(name: str) -> None:
        if name == table:
            raise RuntimeError(f"simulated failure after {name}")

    return hook


def test_a_failure_midway_leaves_nothing_behind(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    path = _file(tmp_path, SMALL)
    with pytest.raises(cdnow.CdnowError, match="nothing was written: simulated failure"):
        cdnow.load_cdnow(Warehouse(warehouse), path, on_table_written=_fail_after("raw.consents"))
    assert not Warehouse(warehouse).table_exists("raw", "customers")  # even the DDL rolled back
    _foreign_rows(warehouse)
    before = _snapshot(warehouse)
    with pytest.raises(cdnow.CdnowError):
        cdnow.load_cdnow(Warehouse(warehouse), path, on_table_written=_fail_after("raw.orders"))
    assert _snapshot(warehouse) == before


def test_a_failed_replace_keeps_the_previous_load(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    path = _file(tmp_path, SMALL)
    _foreign_rows(warehouse)
    cdnow.load_cdnow(Warehouse(warehouse), path, seed=1)
    before = _snapshot(warehouse)
    with pytest.raises(cdnow.CdnowError):
        cdnow.load_cdnow(
            Warehouse(warehouse),
            path,
            seed=2,
            replace=True,
            on_table_written=_fail_after("raw.customers"),
        )
    assert _snapshot(warehouse) == before


def test_a_constraint_violation_is_one_error_line_and_writes_nothing(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    with duckdb.connect(str(warehouse)) as conn:  # an ETL tool's stricter raw.orders
        conn.execute(
            "create schema raw; create table raw.orders (order_id varchar, customer_id varchar, "
            "ordered_at timestamp, amount double check (amount < 1000), discount_amount double, "
            "category varchar, _loaded_at timestamp)"
        )
    line = _one_error_line(_load(warehouse, str(_file(tmp_path, SMALL))))
    assert "failed, nothing was written" in line and "Constraint" in line, line
    assert _rows(warehouse, "select count(*) n from raw.orders") == [{"n": 0}]
    assert not Warehouse(warehouse).table_exists("raw", "customers")


# -- the real file and dbt -------------------------------------------------------------------

needs_shared = pytest.mark.skipif(
    not CDNOW.exists(),
    reason=f"the real CDNOW file is not present ({CDNOW}: the ../shared checkout is absent)",
)


@needs_shared
def test_the_real_cdnow_file_loads(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    result = _load(warehouse, str(CDNOW), "--shift-to", str(SHIFT_TO))
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert result.stdout.startswith(
        "cdnow: 69,659 lines read, 69,659 orders loaded, 23,570 customers, 0 lines skipped; "
        "orders 2024-08-3"
    ), result.stdout
    assert "to 2026-03-01 (UTC, shifted by +" in result.stdout
    [totals] = _rows(
        warehouse,
        "select count(*) n, count(distinct order_id) ids, count(distinct customer_id) customers, "
        "round(sum(amount), 2) amount, max(ordered_at) last from raw.orders",
    )
    expected = sum(float(line.split()[3]) for line in CDNOW.read_text().splitlines()[1:])
    assert totals["n"] == totals["ids"] == 69_659 and totals["customers"] == 23_570
    assert totals["amount"] == pytest.approx(expected, abs=0.005)
    assert totals["last"] < datetime(2026, 3, 2)


def _generated_file(folder: Path) -> Path:
    """A CDNOW-format file of 300 customers over the real file's dates (no ../shared)."""
    rng = np.random.default_rng(5)
    lines = []
    for customer in range(1, 301):
        days = rng.integers(0, 546, size=rng.integers(1, 6))
        for day in np.sort(days):
            when = (np.datetime64("1997-01-01") + day).astype(str).replace("-", "")
            lines.append(f" {customer:05d} {when} {rng.integers(1, 5)} {rng.gamma(2, 20):.2f}")
    return _file(folder, lines)


def test_dbt_build_accepts_every_loaded_row(tmp_path):
    """The real file when present, else a generated one; `dbt build` as of the shifted run date:
    staging keeps every row, nothing is excluded, every customer gets features."""
    warehouse = tmp_path / "w.duckdb"
    source = CDNOW if CDNOW.exists() else _generated_file(tmp_path)
    assert _load(warehouse, str(source), "--shift-to", str(SHIFT_TO)).exit_code == 0
    ensure_journeyman_tables(Warehouse(warehouse))
    vars_ = json.dumps({"run_date": str(SHIFT_TO)})
    result = run_dbt(
        ["build", "--vars", vars_, "--exclude-resource-type", "unit_test"], warehouse, tmp_path
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr
    count = "select count(*) n from {} where customer_id like 'cdnow-%'"
    for raw, built in (
        ("raw.orders", "staging.stg_raw__orders"),
        ("raw.customers", "staging.stg_raw__customers"),
        ("raw.consents", "staging.stg_raw__consents"),
        ("raw.customers", "marts.customer_features"),
    ):
        loaded = _rows(warehouse, count.format(raw))
        assert loaded[0]["n"] > 0 and _rows(warehouse, count.format(built)) == loaded, built
    excluded = _rows(
        warehouse,
        "select source_table, reason_code, count(*) n from marts.dq_excluded_rows "
        "where row_key like 'cdnow-%' group by all",
    )
    assert excluded == []
