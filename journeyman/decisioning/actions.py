"""The joint action space: every (message, channel, local send hour) an agent may choose,
plus "send nothing today"."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from journeyman.decisioning.schema import AgentConfig

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


def pack_allowed(allowed: np.ndarray, rows: np.ndarray) -> pa.Array:
    """The allowed-action mask of each decision as bytes (bit k = action k of the agent's
    action space, little-endian), NULL where `rows` is False: what off-policy evaluation and
    the inspector read back to know the choices the guardrails left the policy."""
    allowed = np.asarray(allowed, dtype=bool)
    packed = np.packbits(allowed, axis=1, bitorder="little")
    width = packed.shape[1]
    values = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(width), len(packed), [None, pa.py_buffer(packed.tobytes())]
    )
    return pc.if_else(pa.array(rows), values.cast(pa.binary()), pa.scalar(None, pa.binary()))


def unpack_allowed(values: list[bytes | None], size: int) -> np.ndarray:
    """bool (n, size) from `pack_allowed`'s bytes; a NULL (nothing recorded) allows nothing."""
    width = (size + 7) // 8
    present = np.array([v is not None for v in values], dtype=bool)
    recorded = [v for v in values if v is not None]
    wrong = next((v for v in recorded if len(v) != width), None)
    if wrong is not None:
        raise ValueError(
            f"an allowed-action mask has {len(wrong) * 8} bits, the action space {size} "
            "actions: the agent's dimensions changed since that decision"
        )
    out = np.zeros((len(values), size), dtype=bool)
    if recorded:  # one buffer, one unpack: no per-row numpy calls
        packed = np.frombuffer(b"".join(recorded), dtype=np.uint8).reshape(-1, width)
        out[present] = np.unpackbits(packed, axis=1, bitorder="little")[:, :size].astype(bool)
    return out
