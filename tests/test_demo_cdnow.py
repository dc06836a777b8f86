"""`journeyman demo --orders cdnow`: a sandbox world made of real (CDNOW-format) purchase
histories — the file's customers and shifted orders in raw.*, purchase traits that continue each
customer's pattern, organic orders from the first days — and the demo run on it end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner

from journeyman import settings
from journeyman.orchestration.cli import main
from journeyman.sandbox import SandboxError, SandboxWorld
from journeyman.sandbox.cdnow import read_transactions
from journeyman.sandbox.cdnow_world import first_customers
from journeyman.warehouse import Warehouse

JOURNEYMAN = Path(sys.executable).parent / "journeyman"
START = date(2026, 3, 2)
FIRST = date(1997, 1, 1)  # every customer's first order: one observation span for all
LAST = date(1998, 6, 30)
HEAVY, SINGLE = 1, 11  # ordered every 10 days / once


def _history() -> dict[int, list[date]]:
    """Order dates per customer number: ten heavy buyers (every 10 days to the end), ten who
    bought once, and sixteen with cycles of 30-150 days who stop at different times."""
    out: dict[int, list[date]] = {}
    span = (LAST - FIRST).days
    for c in range(1, 11):
        out[c] = [FIRST + timedelta(days=d) for d in range(0, span - 10 + c, 10)]
    for c in range(11, 21):
        out[c] = [FIRST]
    for j, c in enumerate(range(21, 37)):
        gap, stop = 30 + 8 * j, span - 25 * j
        out[c] = [FIRST + timedelta(days=d) for d in range(0, stop, gap)]
    return out


def _write_file(folder: Path) -> Path:
    """The histories as a CDNOW-format file: header, one line per order (amounts vary by
    customer), and one malformed line."""
    lines = [" customer_id  date number_of_cds  dollar_value"]
    for c, days in _history().items():
        for k, day in enumerate(days):
            amount = 10.0 + c + (k % 3) * 5
            lines.append(f" {c:05d} {day:%Y%m%d}  1   {amount:.2f}")
    lines.insert(5, " 00003 19970230  1    5.00")  # no such date: skipped
    path = folder / "cdnow_small.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def _rows(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, SandboxWorld]:
    folder = tmp_path_factory.mktemp("cdnow_world")
    tx = first_customers(read_transactions(_write_file(folder)), 200)
    path = folder / "w.duckdb"
    sandbox = SandboxWorld(Warehouse(path), seed=4)
    sandbox.create_from_history(tx, start=START)
    return path, sandbox


def test_the_world_holds_the_files_customers_and_shifted_orders(world):
    path, sandbox = world
    history = _history()
    customers = [r[0] for r in _rows(path, "select customer_id from raw.customers order by 1")]
    assert customers == [f"cdnow-{c:05d}" for c in sorted(history)]
    assert sandbox.n_customers == len(history)
    orders = _rows(path, "select order_id, customer_id, ordered_at, amount from raw.orders")
    assert len(orders) == sum(len(d) for d in history.values())  # the malformed line is not
    stamps = {(int(o[1][6:]), o[0][12:20]) for o in orders}
    assert stamps == {(c, f"{d:%Y%m%d}") for c, days in history.items() for d in days}
    # shifted by whole days so that the last order falls on the day before the start (UTC)
    last = max(o[2] for o in orders)
    assert datetime.combine(START - timedelta(days=1), datetime.min.time()) <= last
    assert last < datetime.combine(START, datetime.min.time())
    zones = dict(_rows(path, "select customer_id, time_zone from raw.customers"))
    shifts = {
        (_local_date(at, zones[customer]) - datetime.strptime(order_id[12:20], "%Y%m%d").date())
        for order_id, customer, at, _ in orders
    }
    assert len(shifts) == 1  # one whole-day shift of the file's dates, in local time


def _local_date(at: datetime, zone: str) -> date:
    return at.replace(tzinfo=UTC).astimezone(ZoneInfo(zone)).date()


def test_purchase_traits_continue_each_customers_pattern(world):
    """Read before any day is simulated (the tests of this module run in order)."""
    path, sandbox = world
    truth = sandbox.truth
    traits, state = truth.traits, truth.state
    history = _history()
    pos = {int(cid[6:]): i for i, cid in enumerate(traits.customer_id)}
    heavy, single = pos[HEAVY], pos[SINGLE]
    assert traits.purchase_rate[heavy] > 10 * traits.purchase_rate[single]
    # per day: the Erlang-2 cycle's mean gap 1/λ near the observed 10 days (not weeks)
    assert 7 < 1 / traits.purchase_rate[heavy] < 15
    assert state.alive[single]  # no repeat purchase: no dropout yet (BG/NBD)
    # alive customers share the observation span, so their rates rise with their repeat days
    x = np.array([len(history[int(c[6:])]) - 1 for c in traits.customer_id])
    alive = state.alive
    levels = sorted(set(x[alive].tolist()))
    for low, high in zip(levels, levels[1:], strict=False):
        assert traits.purchase_rate[alive & (x == low)].max() < (
            traits.purchase_rate[alive & (x == high)].min()
        )
    # the state at the start is the history's
    seen = _rows(path, "select customer_id, count(*), max(ordered_at) from raw.orders group by 1")
    for customer, count, last in seen:
        i = pos[int(customer[6:])]
        assert state.n_orders[i] == count == len(history[int(customer[6:])])
        assert state.last_order_day[i] == (last.date() - date(1970, 1, 1)).days
    amounts = [10.0 + HEAVY + (k % 3) * 5 for k in range(len(history[HEAVY]))]
    assert traits.value_median[heavy] == pytest.approx(np.median(amounts))
    assert (traits.defect == 0).all() and traits.order_at_signup.all()


def test_simulated_days_bring_organic_orders_and_a_second_world_is_refused(world):
    path, sandbox = world
    summaries = [sandbox.simulate_day(START + timedelta(days=i)) for i in range(3)]
    assert sum(s.organic_orders for s in summaries) > 0
    new = _rows(
        path,
        "select customer_id, ordered_at from raw.orders where order_id not like 'cdnow-%'",
    )
    assert len(new) == sum(s.organic_orders for s in summaries)
    assert all(c.startswith("cdnow-") for c, _ in new)
    assert all(START <= at.date() < START + timedelta(days=3) for _, at in new)
    tx = read_transactions(path.parent / "cdnow_small.txt")
    with pytest.raises(SandboxError, match="already holds a sandbox world"):
        sandbox.create_from_history(tx, start=START)


def test_first_customers_takes_the_lowest_ids(tmp_path):
    tx = read_transactions(_write_file(tmp_path))
    three = first_customers(tx, 3)
    assert sorted(set(three.customer.tolist())) == [1, 2, 3]
    assert len(three.customer) == sum(len(_history()[c]) for c in (1, 2, 3))
    assert first_customers(tx, 1000).n_customers == len(_history())


def test_histories_without_a_repeat_purchase_are_a_clear_error(tmp_path):
    path = tmp_path / "once.txt"
    path.write_text("".join(f"{c:05d} 19970101 1 10.00\n" for c in range(1, 30)))
    sandbox = SandboxWorld(Warehouse(tmp_path / "w.duckdb"), seed=1)
    with pytest.raises(SandboxError, match="cannot be fitted.*no customer has a repeat purchase"):
        sandbox.create_from_history(read_transactions(path), start=START)
    assert sandbox.warehouse.scalar("select count(*) from raw.orders") == 0


def test_demo_runs_the_agents_on_the_files_customers(tmp_path):
    orders = _write_file(tmp_path)
    warehouse = tmp_path / "wh" / "warehouse.duckdb"
    env = {**os.environ, settings.WAREHOUSE_ENV: str(warehouse), "COLUMNS": "160"}
    env.pop("DAGSTER_HOME", None)
    args = ["--orders", "cdnow", "--orders-file", str(orders), "--customers", "200"]
    result = subprocess.run(
        [str(JOURNEYMAN), "demo", *args, "--days", "1", "--delivery", "file"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "warning: skipped 1 malformed line(s)" in result.stderr
    n = len(_history())
    assert f"journeyman demo: {n} customers, 1 day," in result.stdout
    assert f"orders: CDNOW's ({orders})" in " ".join(result.stdout.split())
    decided = _rows(
        warehouse, "select customer_id, count(*) from journeyman.decisions group by 1 order by 1"
    )
    assert decided and all(c.startswith("cdnow-") for c, _ in decided)
    assert len(decided) > n // 2
    # file delivery (shadow mode): the messages are JSON lines under the outbox, per destination
    sent = _rows(
        warehouse, "select count(*) from journeyman.decisions where message_id is not null"
    )[0][0]
    lines = [
        line
        for f in (warehouse.parent / "outbox").glob("*/*.jsonl")
        for line in f.read_text().splitlines()
    ]
    assert sent > 0 and len(lines) == sent


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--orders", "cdnow", "--orders-file", "{tmp}/absent.txt"], "set --orders-file"),
        (["--orders-file", "{tmp}/absent.txt"], "--orders-file is read only with --orders cdnow"),
    ],
)
def test_a_missing_orders_file_is_one_line_and_exit_2(tmp_path, args, says):
    warehouse = tmp_path / "wh" / "warehouse.duckdb"
    argv = ["demo", *(a.format(tmp=tmp_path) for a in args)]
    result = CliRunner().invoke(main, argv, env={settings.WAREHOUSE_ENV: str(warehouse)})
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], result.output
    assert not warehouse.parent.exists()
