"""One day's decisions for every agent: stream customers, decide, write atomically."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc

from journeyman.decisioning.assignment import HOLDOUT
from journeyman.decisioning.decide import (
    DECISIONS_SCHEMA,
    NOT_ELIGIBLE,
    AgentDecider,
    contact_history,
    decide_batch,
)
from journeyman.decisioning.features import agent_features
from journeyman.decisioning.schema import AgentConfig
from journeyman.decisioning.store import (
    check_audiences,
    load_arm_statistics,
    stream_customers,
    write_decisions,
    write_message_tags,
)
from journeyman.tables import ensure_feature_columns
from journeyman.warehouse import Warehouse


@dataclass
class DaySummary:
    """Counts for run metadata per agent: customers decided for (`decisions`, the audience's
    and the others'), sends, and exclusions by reason (`not_eligible` included, though those
    rows are not stored); `written`: the rows stored."""

    decisions: Counter[str] = field(default_factory=Counter)
    sends: Counter[str] = field(default_factory=Counter)
    exclusions: Counter[tuple[str, str]] = field(default_factory=Counter)
    written: int = 0
    versions: dict[str, str] = field(default_factory=dict)

    def count(self, agent: str, decided: pa.Table) -> None:
        """Add one batch's decision rows of `agent` (columnar: no per-row Python)."""
        self.decisions[agent] += decided.num_rows
        self.sends[agent] += decided.num_rows - decided.column("message_id").null_count
        reasons = decided.column("exclusion_reason").drop_null().value_counts()
        values, counts = reasons.field(0).to_pylist(), reasons.field(1).to_pylist()
        for value, n in zip(values, counts, strict=True):
            self.exclusions[(agent, value)] += n


def in_audience(decided: pa.Table) -> pa.Table:
    """The decision rows that are stored: all but `not_eligible` (a customer outside the
    agent's audience). Those would be most of the history (one per agent, customer and day)
    and nothing reads them; `journeyman inspect` explains a day without a row from the
    audience's columns, and the day's counts keep their number."""
    reason = decided.column("exclusion_reason")
    return decided.filter(pc.invert(pc.equal(reason, NOT_ELIGIBLE)).fill_null(True))


def decide_day(
    warehouse: Warehouse,
    agents: Sequence[AgentConfig],
    available_features: list[str],
    day: date,
    *,
    batch_size: int = 100_000,
) -> DaySummary:
    """Decide for every agent and customer on `day` and store the decisions."""
    check_audiences(warehouse, agents)
    ensure_feature_columns(warehouse, available_features)
    deciders = [
        AgentDecider.build(
            a,
            agent_features(a, available_features, a.source),
            load_arm_statistics(
                warehouse, a.name, day, available_features, signal=a.goal.learning_signal
            ),
        )
        for a in agents
    ]
    parts: list[pa.Table] = []
    snapshots: list[pa.Table] = []
    summary = DaySummary()
    for batch in stream_customers(warehouse, agents, batch_size):
        # Agents decide in name order; each sees what the previous ones planned today.
        history = contact_history(batch)
        for decider in deciders:
            decided = decide_batch(decider, batch, day, history)
            summary.count(decider.agent.name, decided)
            parts.append(in_audience(decided))
            snapshots.append(_feature_snapshot(decided, batch, available_features))
    table = pa.concat_tables(parts) if parts else DECISIONS_SCHEMA.empty_table()
    features = pa.concat_tables(snapshots) if snapshots else None
    summary.written = write_decisions(warehouse, day, [a.name for a in agents], table, features)
    write_message_tags(warehouse, agents, day)
    for decider in deciders:
        summary.versions[decider.agent.name] = decider.policies[0].version
    return summary


def _feature_snapshot(decided: pa.Table, batch: pa.Table, features: list[str]) -> pa.Table:
    """Decision-time features of the rows learning will use (acted on or held out)."""
    reason = decided.column("exclusion_reason")
    learnable = pc.or_kleene(pc.is_null(reason), pc.equal(reason, HOLDOUT)).fill_null(False)
    columns = {
        "decision_id": decided.column("decision_id"),
        "agent": decided.column("agent"),
        "decision_date": decided.column("decision_date"),
    }
    for f in features:
        columns[f] = batch.column(f).cast(pa.float64())
    return pa.table(columns).filter(learnable)
