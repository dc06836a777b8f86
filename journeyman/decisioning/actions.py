"""The joint action space: every (message, channel, local send hour) an agent may choose,
plus "send nothing today"."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from journeyman.decisioning.config import AgentConfig

NO_SEND = "no_send"


@dataclass(frozen=True)
class ActionSpace:
    """Parallel arrays describing K actions; the no-send action, if allowed, is last."""

    action_id: np.ndarray  # str
    message_id: np.ndarray  # str ('' for no-send)
    channel: np.ndarray  # str ('' for no-send)
    hour: np.ndarray  # int (-1 for no-send)
    is_send: np.ndarray  # bool
    variant: np.ndarray | None = None  # int: subject-line variant (0 when there is one subject)

    @property
    def size(self) -> int:
        return len(self.action_id)

    @property
    def no_send_index(self) -> int | None:
        idx = np.flatnonzero(~self.is_send)
        return int(idx[0]) if len(idx) else None

    def index_of(self, message_id: str, channel: str, hour: int) -> int | None:
        hit = np.flatnonzero(
            (self.message_id == message_id) & (self.channel == channel) & (self.hour == hour)
        )
        return int(hit[0]) if len(hit) else None

    @classmethod
    def for_agent(cls, agent: AgentConfig) -> ActionSpace:
        """Product of the agent's dimensions, skipping messages without content for a channel."""
        rows: list[tuple[str, str, str, int, bool, int]] = []
        dims = agent.dimensions
        for message in dims.messages:
            for channel in dims.channels:
                content = message.content(channel)
                if content is None:
                    continue
                variants = len(content.subjects)
                for hour in dims.send_hours:
                    for v in range(variants):
                        key = f"{message.id}/{channel}/{hour:02d}"
                        if variants > 1:
                            key += f"/s{v + 1}"
                        rows.append((key, message.id, channel, hour, True, v))
        if dims.allow_no_send:
            rows.append((NO_SEND, "", "", -1, False, 0))
        ids, messages, channels, hours, sends, variants_ = zip(*rows, strict=True)
        return cls(
            action_id=np.array(ids),
            message_id=np.array(messages),
            channel=np.array(channels),
            hour=np.array(hours, dtype=np.int64),
            is_send=np.array(sends, dtype=bool),
            variant=np.array(variants_, dtype=np.int64),
        )
