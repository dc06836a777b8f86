"""The engagement surrogate (goal learning_signal: surrogate) computed from summed statistics."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from journeyman.decisioning.learning import ArmStatistics
from journeyman.decisioning.store import load_arm_statistics
from journeyman.warehouse import Warehouse

FEATURES = ["recency", "open_rate"]
ACTIONS = {"no_send": "none", "a_email": "email", "b_email": "email", "c_sms": "sms"}
DAY = date(2026, 3, 1)


def decisions(rng: np.random.Generator, n: int = 4000) -> dict[str, np.ndarray]:
    """Random decisions: an action, its engagement (none for no_send), a reward and features."""
    action = rng.choice(list(ACTIONS), size=n)
    sent = action != "no_send"
    engagement = np.where(sent, rng.choice(3, size=n, p=[0.75, 0.2, 0.05]), 0)
    reward = rng.exponential(60.0, n) * (rng.random(n) < 0.01 + 0.05 * engagement)
    return {
        "action": action,
        "channel": np.array([ACTIONS[a] for a in action]),
        "engagement": engagement,
        "reward": reward,
        "x": rng.normal(size=(n, len(FEATURES))),
        "day": DAY + np.array([timedelta(days=int(d)) for d in rng.integers(0, 3, n)]),
    }


def statistics_table(d: dict[str, np.ndarray]) -> pa.Table:
    """What arm_statistics_daily holds for these decisions: sums per action × day × engagement."""
    keys = sorted(set(zip(d["action"], d["day"], d["engagement"], strict=True)))
    columns: dict[str, list] = {
        c: [] for c in ("agent", "action_id", "available_on", "channel", "engagement", "n")
    }
    sums: dict[str, list[float]] = {"sum_r": [], "sum_rr": []}
    for f in FEATURES:
        sums[f"x__{f}"], sums[f"xr__{f}"] = [], []
    for i, fi in enumerate(FEATURES):
        for fj in FEATURES[i:]:
            sums[f"xx__{fi}__{fj}"] = []
    for action, day, engagement in keys:
        rows = (d["action"] == action) & (d["day"] == day) & (d["engagement"] == engagement)
        r, x = d["reward"][rows], d["x"][rows]
        for name, value in zip(
            columns,
            ("winback", action, day, ACTIONS[action], int(engagement), int(rows.sum())),
            strict=True,
        ):
            columns[name].append(value)
        sums["sum_r"].append(float(r.sum()))
        sums["sum_rr"].append(float(r @ r))
        for i, fi in enumerate(FEATURES):
            sums[f"x__{fi}"].append(float(x[:, i].sum()))
            sums[f"xr__{fi}"].append(float(x[:, i] @ r))
            for j, fj in enumerate(FEATURES[i:], start=i):
                sums[f"xx__{fi}__{fj}"].append(float(x[:, i] @ x[:, j]))
    return pa.table({**columns, **sums})


def test_surrogate_statistics_equal_per_decision_cell_means(tmp_path: Path) -> None:
    d = decisions(np.random.default_rng(3))
    warehouse = Warehouse(tmp_path / "w.duckdb")
    warehouse.execute("create schema marts")
    table = statistics_table(d)
    with warehouse.connect() as conn:
        raw = conn.connection.driver_connection
        raw.register("stats", table)
        raw.execute("create table marts.arm_statistics_daily as select * from stats")
    end = DAY + timedelta(days=5)

    cells = np.char.add(np.char.add(d["channel"], "|"), d["engagement"].astype(str))
    surrogate = d["reward"].copy()
    for c in np.unique(cells):
        surrogate[cells == c] = d["reward"][cells == c].mean()
    assert len(np.unique(surrogate)) == 7  # none; e-mail and SMS × not opened / opened / clicked
    expected = ArmStatistics.from_observations(FEATURES, d["x"], d["action"], surrogate)
    got = load_arm_statistics(warehouse, "winback", end, FEATURES, signal="surrogate")
    assert got.action_ids == expected.action_ids
    for name in ("n", "xx", "xr", "rr"):
        assert getattr(got, name) == pytest.approx(getattr(expected, name), rel=1e-9, abs=1e-9)

    outcome = load_arm_statistics(warehouse, "winback", end, FEATURES)
    direct = ArmStatistics.from_observations(FEATURES, d["x"], d["action"], d["reward"])
    assert outcome.xr == pytest.approx(direct.xr, rel=1e-9, abs=1e-9)
    assert not np.allclose(got.xr, outcome.xr)
    # only the rewards available by the day count, in the cell means too
    early = d["day"] == DAY
    early_surrogate = d["reward"][early].copy()
    for c in np.unique(cells[early]):
        early_surrogate[cells[early] == c] = d["reward"][early][cells[early] == c].mean()
    first = load_arm_statistics(warehouse, "winback", DAY, FEATURES, signal="surrogate")
    first_expected = ArmStatistics.from_observations(
        FEATURES, d["x"][early], d["action"][early], early_surrogate
    )
    assert first.xr == pytest.approx(first_expected.xr, rel=1e-9, abs=1e-9)


def test_an_unknown_signal_is_an_error(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "w.duckdb")
    warehouse.execute("create schema marts")
    with warehouse.connect() as conn:
        raw = conn.connection.driver_connection
        raw.register("stats", statistics_table(decisions(np.random.default_rng(1), 200)))
        raw.execute("create table marts.arm_statistics_daily as select * from stats")
    with pytest.raises(ValueError, match="outcome or surrogate"):
        load_arm_statistics(warehouse, "winback", DAY, FEATURES, signal="clicks")
