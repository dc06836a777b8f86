"""The report in a real browser: headless Chromium opens the HTML file, nothing goes wrong in
its console, every chart is drawn, the page does not overflow, and a full-page screenshot is
kept under tests/artifacts/ for a person to look at.

The report is rendered from synthetic mart rows that exercise every section (several comparison
groups, a shadow group, off-policy estimates, failed deliveries), so this test takes seconds;
the numbers themselves are checked against real marts in test_report.py.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from browser import Browser, find_chromium

from journeyman.insights.report import SECTIONS, render_report
from journeyman.insights.report_data import AgentData, ordered_groups, with_interval

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
DAYS = [date(2026, 3, 2) + timedelta(days=i) for i in range(14)]
GROUPS = {"treatment": 900, "holdout": 100, "business_as_usual": 200, "random_control": 50}
MESSAGES = ("we_miss_you", "ten_off", "twenty_off_urgent", "free_shipping")
CHANNELS = ("email", "sms", "push")
HOURS = (8, 10, 12, 18, 20)

pytestmark = pytest.mark.skipif(
    find_chromium() is None,
    reason="no Chromium binary ($CHROMIUM, /usr/bin/chromium or chromium on the PATH)",
)


def _daily(rng: np.random.Generator) -> list[dict[str, Any]]:
    rows = []
    for group, size in {**GROUPS, "shadow": 80}.items():
        rate = 0.004 if group == "treatment" else 0.003
        for i, day in enumerate(DAYS):
            customers = int(size * min(1.0, (i + 1) / 5))
            conversions = rate * (i + 1)
            revenue = conversions * 60 * (1 + rng.normal(0, 0.05))
            half_c = 1.96 * math.sqrt(conversions / customers)
            half_r = 60 * half_c
            rows.append(
                {
                    "day": day,
                    "experiment_group": group,
                    "customers": customers,
                    "cumulative_sends": 0 if group in ("holdout", "shadow") else customers * i,
                    "conversions_per_customer": conversions,
                    "conversions_per_customer_low": conversions - half_c,
                    "conversions_per_customer_high": conversions + half_c,
                    "revenue_per_customer": revenue,
                    "revenue_per_customer_low": revenue - half_r,
                    "revenue_per_customer_high": revenue + half_r,
                    "unsubscribes_per_customer": 0.001 * i,
                    "complaints_per_customer": 0.0,
                }
            )
    return rows


def _uplift() -> list[dict[str, Any]]:
    rows = []
    for metric, mean in (("revenue", 1.2), ("conversions", 0.02), ("unsubscribes", 0.004)):
        for k, group in enumerate(g for g in GROUPS if g != "treatment"):
            diff = mean * (0.1 + 0.1 * k)
            half = mean * 0.15
            rows.append(
                {
                    "metric": metric,
                    "is_goal_metric": metric == "revenue",
                    "comparison_group": group,
                    "treatment_customers": GROUPS["treatment"],
                    "treatment_mean": mean + diff,
                    "treatment_sd": mean * 4,
                    "comparison_customers": GROUPS[group],
                    "comparison_mean": mean,
                    "comparison_sd": mean * 4,
                    "absolute_difference": diff,
                    "absolute_low": diff - half,
                    "absolute_high": diff + half,
                    "relative_difference": diff / mean,
                    "relative_low": (diff - half) / mean,
                    "relative_high": (diff + half) / mean,
                    "degrees_of_freedom": 150.0,
                    "is_significant": diff - half > 0,
                }
            )
    return rows


def _driver_tree() -> list[dict[str, Any]]:
    rows = []
    for k, (group, size) in enumerate({**GROUPS, "shadow": 80}.items()):
        converted = int(size * (0.05 + 0.01 * k))
        rows.append(
            {
                "experiment_group": group,
                "customers": size,
                "converted_customers": converted,
                "conversions": converted + 3,
                "revenue": (converted + 3) * 61.5,
                "conversions_per_customer": (converted + 3) / size,
                "revenue_per_conversion": 61.5,
                "revenue_per_customer": (converted + 3) * 61.5 / size,
            }
        )
    return rows


def _shares(rng: np.random.Generator, options: dict[str, tuple]) -> list[dict[str, Any]]:
    """agent_preferences-like rows: per day and dimension, shares of the options."""
    rows = []
    for day in DAYS:
        for dimension, values in options.items():
            weights = rng.dirichlet(np.ones(len(values)) * 3)
            for option, share in zip(values, weights, strict=True):
                rows.append(
                    {
                        "decision_date": day,
                        "dimension": dimension,
                        "option": str(option),
                        "decisions": int(share * 1000),
                        "share": float(share),
                    }
                )
    return rows


def _segments(rng: np.random.Generator, options: dict[str, tuple]) -> list[dict[str, Any]]:
    tiers = {
        "recency": ("0-29d", "30-89d", "90-179d", "180d+", "unknown"),
        "frequency": ("0", "1", "2-4", "5+"),
        "monetary": ("<50", "50-100", "100-200", "200+"),
    }
    rows = []
    for segment_type, segments in tiers.items():
        for segment in segments:
            for dimension, values in options.items():
                weights = rng.dirichlet(np.ones(len(values)) * 2)
                for option, share in zip(values, weights, strict=True):
                    decisions = int(share * 700)
                    rows.append(
                        {
                            "segment_type": segment_type,
                            "segment": segment,
                            "dimension": dimension,
                            "option": str(option),
                            "decisions": decisions,
                            "share": float(share),
                        }
                    )
    return rows


def _sends(rng: np.random.Generator, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with additive sums (sends, Σ, Σ²) and their per-send means and intervals."""
    for row in keys:
        sends = int(rng.integers(50, 2000))
        conversions = int(rng.binomial(sends, 0.02))
        revenue = float(conversions * rng.uniform(40, 90))
        row.update(
            sends=sends,
            conversions=conversions,
            conversions_sq=conversions,
            revenue=revenue,
            revenue_sq=revenue * revenue / max(conversions, 1),
        )
    with_interval(keys, "conversions_per_send", "sends", "conversions", "conversions_sq")
    return with_interval(keys, "revenue_per_send", "sends", "revenue", "revenue_sq")


def _hour_channel(rng: np.random.Generator) -> list[dict[str, Any]]:
    keys = [
        {"channel": c, "local_hour": h, "all_channels": int(c is None), "all_hours": int(h is None)}
        for c in (*CHANNELS, None)
        for h in (*HOURS, None)
    ]
    return _sends(rng, keys)


def _diagnostics() -> list[dict[str, Any]]:
    rows = []
    for i, day in enumerate(DAYS):
        for channel, destination in zip(CHANNELS, ("sendgrid", "twilio", "fcm"), strict=True):
            attempted = 300 + 10 * i
            failed = 5 if channel == "sms" else 0
            rows.append(
                {
                    "decision_date": day,
                    "destination": destination,
                    "decisions": 1500,
                    "messages_planned": 950 + 30 * i,
                    "attempted": attempted,
                    "delivered": attempted - failed,
                    "failed": failed,
                    **dict.fromkeys(("in_flight", "unknown", "expired", "suppressed"), 0),
                    "cancelled": 0,
                    "not_attempted": 0,
                }
            )
    return rows


def synthetic_agent(seed: int = 0) -> AgentData:
    """One agent's report data covering every section of the report."""
    rng = np.random.default_rng(seed)
    options = {"send": ("send", "no_send"), "channel": CHANNELS, "local_hour": HOURS}
    options["message"] = MESSAGES
    messages = [
        {"message_id": m, "channel": c, "subject_variant": v}
        for m in MESSAGES
        for c in CHANNELS
        for v in ((0, 1) if c == "email" else (0,))
    ]
    exploration = [
        {
            "decision_date": day,
            "decisions": 900,
            "distinct_actions": 40,
            "action_entropy": 3.5 - 0.1 * i,
            "normalized_entropy": (3.5 - 0.1 * i) / math.log(40),
        }
        for i, day in enumerate(DAYS)
    ]
    daily = _daily(rng)
    return AgentData(
        agent="winback <test & co>",
        first_day=DAYS[0],
        last_day=DAYS[-1],
        uplift=_uplift(),
        driver_tree=_driver_tree(),
        daily=daily,
        last_daily=[r for r in daily if r["day"] == DAYS[-1]],
        action_shares=_shares(rng, options),
        segments=_segments(rng, options),
        hour_channel=_hour_channel(rng),
        messages=_sends(rng, messages),
        diagnostics=_diagnostics(),
        exploration=exploration,
        groups=ordered_groups([*GROUPS, "shadow"]),
    )


OFF_POLICY = [
    (
        name,
        {
            **{
                key: {"value": v + shift, "low": v + shift - 0.3, "high": v + shift + 0.3}
                for key, v in (("ipw", 1.3), ("snipw", 1.25), ("dm", 1.1), ("dr", 1.28))
            },
            "logged": {"value": 1.2, "low": 1.1, "high": 1.3},
            "n": 12000,
            "effective_sample_size": 850.0,
            "support_gap": gap,
            "warnings": [f"{gap:.0%} of the candidate's choices are outside the logs"]
            if gap
            else [],
        },
    )
    for name, shift, gap in (("greedy linear_ts", 0.1, 0.0), ("always ten_off", -0.2, 0.12))
]

CHARTS_DRAWN = """
[...document.querySelectorAll('svg.chart')].map(svg => {
  const box = svg.getBoundingClientRect();
  const marks = [...svg.querySelectorAll('path, rect')].filter(el => {
    const b = el.getBBox();
    return el.tagName === 'path' ? (b.width > 0 || b.height > 0) : (b.width > 0 && b.height > 0);
  });
  return {id: svg.id, width: box.width, height: box.height, marks: marks.length,
          title: (svg.querySelector('title') || {}).textContent || ''};
})
"""


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("browser") / "report.html"
    path.write_text(render_report([synthetic_agent()], off_policy=OFF_POLICY), encoding="utf-8")
    return path


def test_report_renders_in_chromium_without_errors(report_file: Path) -> None:
    expected = report_file.read_text(encoding="utf-8").count('<svg class="chart"')
    with Browser() as browser:
        page = browser.open(report_file.as_uri())
        charts = page.evaluate(CHARTS_DRAWN)
        sections = page.evaluate(
            "[...document.querySelectorAll('[data-section]')].map(s => s.dataset.section)"
        )
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        shot = page.screenshot(ARTIFACTS / "report.png")
        errors = list(page.errors)
    print(f"\nscreenshot: {shot}")
    assert errors == []
    assert sections == [key for key, _ in SECTIONS]
    assert len(charts) == expected >= 15
    for chart in charts:
        assert chart["width"] > 100 and chart["height"] > 50, chart
        assert chart["marks"] > 0 and chart["title"], chart
    assert overflow <= 0, f"the page is {overflow} px wider than the window"
    assert shot.stat().st_size > 50_000


def test_console_errors_are_caught(tmp_path: Path) -> None:
    """The driver does see errors: a page that logs one and throws one."""
    page_file = tmp_path / "broken.html"
    page_file.write_text(
        "<!doctype html><title>x</title><script>console.error('boom');"
        "undefinedFunction();</script>",
        encoding="utf-8",
    )
    with Browser() as browser:
        errors = browser.open(page_file.as_uri()).errors
    assert any("boom" in e for e in errors) and any("undefinedFunction" in e for e in errors)
