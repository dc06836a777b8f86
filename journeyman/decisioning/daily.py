"""One day's decisions for every agent: stream customers, decide, write atomically."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import pyarrow as pa

from journeyman.decisioning.config import AgentConfig
from journeyman.decisioning.decide import (
    DECISIONS_SCHEMA,
    AgentDecider,
    contact_history,
    decide_batch,
)
from journeyman.decisioning.features import agent_features
from journeyman.decisioning.store import check_audiences, stream_customers, write_decisions
from journeyman.warehouse import Warehouse


@dataclass
class DaySummary:
    """Counts for run metadata: decisions, sends and exclusions per agent."""

    decisions: Counter[str] = field(default_factory=Counter)
    sends: Counter[str] = field(default_factory=Counter)
    exclusions: Counter[tuple[str, str]] = field(default_factory=Counter)
    written: int = 0


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
    deciders = [
        AgentDecider.build(a, agent_features(a, available_features, a.source)) for a in agents
    ]
    parts: list[pa.Table] = []
    for batch in stream_customers(warehouse, agents, batch_size):
        # Agents decide in name order; each sees what the previous ones planned today.
        history = contact_history(batch)
        parts.extend(decide_batch(d, batch, day, history) for d in deciders)
    table = pa.concat_tables(parts) if parts else DECISIONS_SCHEMA.empty_table()
    summary = DaySummary()
    for row in table.select(["agent", "message_id", "exclusion_reason"]).to_pylist():
        summary.decisions[row["agent"]] += 1
        if row["message_id"] is not None:
            summary.sends[row["agent"]] += 1
        if row["exclusion_reason"]:
            summary.exclusions[(row["agent"], row["exclusion_reason"])] += 1
    summary.written = write_decisions(warehouse, day, [a.name for a in agents], table)
    return summary
