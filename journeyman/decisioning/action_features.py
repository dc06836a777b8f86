"""Factored action features: what an action *is*, so learning carries across actions.

Each joint action (message, channel, local hour) — and "send nothing" — becomes a vector φ(a):
a constant (the organic baseline every action shares), a send indicator, one-hots for channel
and hour, one-hots for every message tag value (offer, tone, value proposition, category) and the
message itself. A new message with familiar tags starts from what its tags taught, not from zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from journeyman.decisioning.actions import ActionSpace
from journeyman.decisioning.schema import AgentConfig


@dataclass(frozen=True)
class ActionFeatures:
    """Φ: one row per action of the space, one column per named action feature."""

    names: list[str]
    matrix: np.ndarray  # float (K, p)


def action_features(agent: AgentConfig, space: ActionSpace) -> ActionFeatures:
    """Build Φ for an agent's action space."""
    messages = {m.id: m for m in agent.dimensions.messages}
    names = ["bias", "send"]
    names += [f"channel={c}" for c in agent.dimensions.channels]
    names += [f"hour={h:02d}" for h in agent.dimensions.send_hours]
    tag_values = sorted({(k, v) for m in messages.values() for k, v in m.tags.items()})
    names += [f"tag:{k}={v}" for k, v in tag_values]
    names += [f"message={m}" for m in messages]
    variant_names = sorted(
        {
            f"subject={m.id}#{v + 1}"
            for m in messages.values()
            for ch in agent.dimensions.channels
            if (c := m.content(ch)) is not None and len(c.subjects) > 1
            for v in range(len(c.subjects))
        }
    )
    names += variant_names
    index = {n: i for i, n in enumerate(names)}
    matrix = np.zeros((space.size, len(names)))
    matrix[:, index["bias"]] = 1.0
    for a in range(space.size):
        if not space.is_send[a]:
            continue
        row = matrix[a]
        row[index["send"]] = 1.0
        row[index[f"channel={space.channel[a]}"]] = 1.0
        row[index[f"hour={int(space.hour[a]):02d}"]] = 1.0
        message = messages[str(space.message_id[a])]
        for k, v in message.tags.items():
            row[index[f"tag:{k}={v}"]] = 1.0
        row[index[f"message={message.id}"]] = 1.0
        variant = f"subject={message.id}#{int(space.variant[a]) + 1}"
        if variant in index:
            row[index[variant]] = 1.0
    return ActionFeatures(names=names, matrix=matrix)
