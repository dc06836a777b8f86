"""`journeyman report` on a real warehouse: the session's insights world (file delivery, three
simulated days, the shipped agents plus a shadow copy of winback) built by dbt, then the HTML
report.

The summary's numbers must be the marts' numbers exactly (`data-value`), every section must be
there, and every way the report cannot be written is one clear error (exit status 2).
"""

from __future__ import annotations

import math
import shutil
from datetime import date, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from journeyman import settings
from journeyman.decisioning.off_policy import evaluate
from journeyman.insights import ReportError, write_report
from journeyman.insights.report import SECTIONS
from journeyman.orchestration.report_command import report
from journeyman.tables import ensure_raw_tables
from journeyman.warehouse import Warehouse

START = date(2026, 3, 2)
SHADOW_AGENT = "zz_shadow_winback"  # decides last: the live agents' decisions are unchanged


def _agents(folder: Path, extra: dict[str, dict[str, Any]]) -> Path:
    """The shipped agent files plus `extra` copies of winback (name → overrides)."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in sorted(settings.AGENTS_DIR.glob("*.yml")):
        shutil.copy(source, folder / source.name)
    base = yaml.safe_load((settings.AGENTS_DIR / "winback.yml").read_text())
    for name, overrides in extra.items():
        data = {**base, "name": name, **overrides}
        (folder / f"{name}.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


@pytest.fixture(scope="module")
def warehouse(insights_world) -> Warehouse:
    """The session's insights world (insights_world.py): the shipped agents and a shadow copy of
    winback, three days through the daily Dagster job (file delivery), built by dbt."""
    return Warehouse(insights_world.path, read_only=True)


def _rows(warehouse: Warehouse, sql: str) -> list[dict[str, Any]]:
    with duckdb.connect(str(warehouse.path), read_only=True) as conn:
        cursor = conn.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


class _Page(HTMLParser):
    """What the tests read from a report: sections, summary figures, cards, text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.sections: list[tuple[str, str]] = []  # (agent, section)
        self.figures: dict[tuple[str, str, str], dict[str, str]] = {}  # agent, metric, group
        self.cards: dict[tuple[str, str], dict[str, str]] = {}  # agent, group → field → value
        self.tags: list[str] = []
        self._agent = self._sentence = self._card = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        if "data-agent" in a:
            self._agent = a["data-agent"]
        if "data-section" in a:
            self.sections.append((self._agent, a["data-section"]))
        if tag == "p" and "data-metric" in a:
            self._sentence = (self._agent, a["data-metric"], a["data-comparison-group"])
            self.figures[self._sentence] = {}
        if tag == "article" and "data-group" in a:
            self._card = (self._agent, a["data-group"])
            self.cards.setdefault(self._card, {})
        if tag == "span" and "data-field" in a:
            if self._sentence is not None:
                self.figures[self._sentence][a["data-field"]] = a["data-value"]
            if self._card is not None:
                self.cards[self._card][a["data-field"]] = a["data-value"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "p":
            self._sentence = None
        if tag == "article":
            self._card = None


def _page(path: Path) -> _Page:
    return _Page(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def full_report(warehouse: Warehouse, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(warehouse, tmp_path_factory.mktemp("out"))


def _same(shown: str, exact: Any) -> bool:
    if exact is None:
        return shown == ""
    return float(shown) == float(exact) or (math.isnan(float(shown)) and math.isnan(exact))


def test_summary_numbers_are_the_marts_numbers(warehouse, full_report):
    goal_rows = _rows(warehouse, "select * from marts.agent_uplift where is_goal_metric")
    assert goal_rows, "the demo produced no uplift rows"
    figures = _page(full_report).figures
    for row in goal_rows:
        key = (row["agent"], row["metric"], row["comparison_group"])
        assert key in figures, f"no summary sentence for {key}"
        shown = figures[key]
        assert "absolute_difference" in shown
        for field, value in shown.items():
            assert _same(value, row[field]), (key, field, value, row[field])
        nothing_yet = row["treatment_mean"] == 0 == row["comparison_mean"]  # "too early"
        if row["absolute_low"] is not None and not nothing_yet:
            assert {"absolute_low", "absolute_high"} <= set(shown)


def test_every_section_of_every_agent_is_there(warehouse, full_report):
    page = _page(full_report)
    agents = [
        r["agent"]
        for r in _rows(warehouse, "select distinct agent from marts.agent_driver_tree order by 1")
    ]
    assert {"winback", SHADOW_AGENT} <= set(agents)
    expected = [(agent, key) for agent in agents for key, _ in SECTIONS]
    assert page.sections == expected
    assert "script" not in page.tags and "img" not in page.tags and "link" not in page.tags
    text = full_report.read_text(encoding="utf-8")
    assert text.count('<svg class="chart"') >= 10 * len(agents)
    assert "https://" not in text and "http://" not in text.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )


def test_cards_show_the_driver_tree_and_the_last_day(warehouse, full_report):
    cards = _page(full_report).cards
    for row in _rows(warehouse, "select * from marts.agent_driver_tree"):
        if row["experiment_group"] == "shadow":
            continue
        card = cards[(row["agent"], row["experiment_group"])]
        for field in ("customers", "conversions_per_customer", "revenue_per_customer"):
            assert _same(card[field], row[field]), (row["agent"], field)
    last = _rows(
        warehouse,
        "select * from marts.agent_group_daily qualify day = max(day) over (partition by agent)",
    )
    for row in last:
        if row["experiment_group"] != "shadow":
            card = cards[(row["agent"], row["experiment_group"])]
            assert _same(card["cumulative_sends"], row["cumulative_sends"])


def test_shadow_agent_has_its_section_and_says_so(warehouse, tmp_path):
    path = write_report(warehouse, tmp_path, agent=SHADOW_AGENT)
    text = path.read_text(encoding="utf-8")
    page = _page(path)
    assert {a for a, _ in page.sections} == {SHADOW_AGENT}
    assert "shadow mode" in text and "<h4>Shadow group</h4>" in text
    shadow = _rows(
        warehouse,
        f"select * from marts.agent_driver_tree where agent = '{SHADOW_AGENT}' "
        "and experiment_group = 'shadow'",
    )[0]
    assert _same(page.cards[(SHADOW_AGENT, "shadow")]["customers"], shadow["customers"])


def test_since_limits_the_charts_over_time(warehouse, tmp_path):
    since = START + timedelta(days=1)
    text = write_report(warehouse, tmp_path, agent="winback", since=since).read_text("utf-8")
    assert "Mar 02" not in text and "Mar 03" in text
    with pytest.raises(ReportError, match="after the last day"):
        write_report(warehouse, tmp_path, agent="winback", since=START + timedelta(days=30))


def test_off_policy_estimates_are_tabulated_and_escaped(warehouse, tmp_path):
    rng = np.random.default_rng(0)
    n, k = 400, 3
    actions = rng.integers(0, k, n)
    candidate = np.eye(k)[np.zeros(n, dtype=int)]
    estimate = evaluate(rng.random(n), actions, np.full(n, 1 / k), candidate, rng.random((n, k)))
    name = "<script>alert(1)</script> greedy"
    path = write_report(
        warehouse, tmp_path, agent="winback", off_policy=[(name, estimate.to_json())]
    )
    text = path.read_text(encoding="utf-8")
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt; greedy" in text
    for key in ("ipw", "snipw", "dm", "dr"):
        assert f'data-value="{estimate.estimates[key].value!r}"' in text
    assert f'data-value="{estimate.logged.value!r}"' in text
    assert 'id="off-policy"' in text  # its forest plot


def test_unknown_agent_is_a_clear_error(warehouse, tmp_path):
    with pytest.raises(ReportError, match=r"unknown agent 'nobody'; agents with data.*winback"):
        write_report(warehouse, tmp_path, agent="nobody")


def test_agent_without_decisions_is_a_clear_error(warehouse, tmp_path):
    with pytest.raises(ReportError, match="'newcomer' has no decisions in the marts yet"):
        write_report(warehouse, tmp_path, agent="newcomer", configured_agents=["newcomer"])


def test_missing_warehouse_or_marts_is_a_clear_error(warehouse, tmp_path):
    with pytest.raises(ReportError, match="no warehouse at .*run dbt build or journeyman demo"):
        write_report(Warehouse(tmp_path / "none.duckdb", read_only=True), tmp_path)
    raw_only = Warehouse(tmp_path / "loaded.duckdb")  # not raw.duckdb: a catalog "raw"
    ensure_raw_tables(raw_only)
    with pytest.raises(ReportError, match="no performance marts yet.*journeyman demo first"):
        write_report(raw_only, tmp_path)
    empty = tmp_path / "empty.duckdb"
    with duckdb.connect(str(empty)) as conn:  # the marts' tables, without rows
        conn.execute(f"attach '{warehouse.path}' as built (read_only)")
        conn.execute("create schema marts")
        for (table,) in conn.execute(
            "select table_name from information_schema.tables "
            "where table_catalog = 'built' and table_schema = 'marts'"
        ).fetchall():
            conn.execute(f"create table marts.{table} as select * from built.marts.{table} limit 0")
    with pytest.raises(ReportError, match="the marts hold no decisions yet"):
        write_report(Warehouse(empty, read_only=True), tmp_path)


def test_marts_of_another_contract_are_a_clear_error(warehouse, tmp_path):
    copy = tmp_path / "older.duckdb"
    shutil.copy(warehouse.path, copy)
    with duckdb.connect(str(copy)) as conn:
        conn.execute("alter table marts.message_performance drop column revenue_sq")
    with pytest.raises(ReportError, match="do not match this report .*rebuild them with dbt"):
        write_report(Warehouse(copy, read_only=True), tmp_path, agent="winback")


def _cli(warehouse_path: Path, *args: str, agents: Path | None = None):
    env = {settings.WAREHOUSE_ENV: str(warehouse_path)}
    if agents is not None:
        env[settings.AGENTS_ENV] = str(agents)
    return CliRunner().invoke(report, list(args), env=env)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "error: there is no warehouse at"),
        ("unknown", "error: unknown agent 'nobody'"),
        ("newcomer", "error: agent 'newcomer' has no decisions in the marts yet"),
    ],
)
def test_command_errors_are_one_line_exit_2(warehouse, tmp_path, case, message):
    agents = _agents(tmp_path / "agents", {"newcomer": {"salt": "newcomer-v1"}})
    if case == "missing":
        result = _cli(tmp_path / "none.duckdb")
    else:
        result = _cli(
            warehouse.path, "--agent", "nobody" if case == "unknown" else case, agents=agents
        )
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.output
    assert "Traceback" not in result.output


def test_command_writes_the_report_and_prints_its_path(warehouse, tmp_path):
    result = _cli(warehouse.path, "--agent", "winback", "--out", str(tmp_path / "reports"))
    assert result.exit_code == 0, result.output
    path = Path(result.output.strip())
    assert path.parent == tmp_path / "reports" and path.suffix == ".html"
    assert [a for a, _ in _page(path).sections] == ["winback"] * len(SECTIONS)


# -- the pieces, without a warehouse ------------------------------------------------------------

UPLIFT_ROW = {
    "metric": "revenue",
    "is_goal_metric": True,
    "comparison_group": "holdout",
    "treatment_customers": 40_000,
    "treatment_mean": 4.42,
    "comparison_customers": 5_000,
    "comparison_mean": 4.0,
    "absolute_difference": 0.4213,
    "absolute_low": -0.104,
    "absolute_high": 0.9466,
    "relative_difference": 0.105,
    "relative_low": -0.026,
    "relative_high": 0.237,
    "is_significant": False,
}


def test_summary_sentence_reads_plainly():
    from journeyman.insights.summary import plain, uplift_sentence

    assert plain(uplift_sentence(UPLIFT_ROW)) == (
        "Treatment earns $0.42 more revenue per customer than the holdout (95 % interval "
        "−$0.10 to $0.95; +10 % relative, from −2.6 % to +24 %): not yet significant."
    )
    fewer = {**UPLIFT_ROW, "metric": "conversions", "absolute_difference": -0.0123}
    fewer |= {"absolute_low": -0.02, "absolute_high": -0.004, "is_significant": True}
    text = plain(uplift_sentence(fewer))
    assert text.startswith("Treatment makes 0.012 fewer conversions per customer")
    assert "significant, treatment is behind." in text


def test_summary_is_honest_when_data_are_thin():
    from journeyman.insights.summary import plain, summary, uplift_sentence

    thin = {**UPLIFT_ROW, "comparison_customers": 12}
    assert "Data are still thin (12 customers in the holdout)" in plain(uplift_sentence(thin))
    lonely = {**UPLIFT_ROW, "absolute_low": None, "absolute_high": None, "comparison_customers": 1}
    assert "too few customers for an interval yet" in plain(uplift_sentence(lonely))
    shadow = summary("a", [], ["holdout", "shadow"], 10, START, START)
    assert "shadow mode" in plain(shadow[-1].parts)
    alone = summary("a", [], ["treatment"], 10, START, START)
    assert "no comparison group" in plain(alone[-1].parts)


def test_charts_escape_text_and_skip_empty_data():
    from journeyman.insights.charts import Series, line_chart, nice_ticks

    svg = line_chart(
        "c", "<b>title</b>", [START], [Series("a & b", [1.0])], x_label="x", y_label="y"
    )
    assert "<b>" not in svg and "&lt;b&gt;title&lt;/b&gt;" in svg and "a &amp; b" in svg
    assert 'class="chart"' in svg and "<title" in svg
    empty = line_chart("c", "t", [START], [Series("a", [None])], x_label="x", y_label="y")
    assert "svg" not in empty and 'class="empty"' in empty
    assert nice_ticks(0.0, 0.87) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(-0.01, 0.0098) == [-0.01, -0.005, 0.0, 0.005, 0.01]


def test_intervals_are_recomputed_like_the_marts_macro():
    from scipy.stats import t

    from journeyman.insights.report_data import t_quantile_975, with_interval

    for df in (1, 2, 7, 29, 30, 31, 200, 10_000):
        assert t_quantile_975(df) == pytest.approx(t.ppf(0.975, df), rel=1e-6)
    values = np.array([0.0, 1.0, 0.0, 2.0, 0.0, 1.0, 5.0])
    row = {"n": len(values), "s": values.sum(), "ss": (values**2).sum()}
    with_interval([row], "m", "n", "s", "ss")
    half = t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    assert row["m"] == pytest.approx(values.mean())
    assert (row["m_low"], row["m_high"]) == pytest.approx(
        (values.mean() - half, values.mean() + half)
    )
