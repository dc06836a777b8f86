"""What connectors handed to vendors, read back from JSONL files (the local vendors' outbox)."""

from __future__ import annotations

import json
from pathlib import Path

from journeyman.connectors.destination import OutboundMessage

#: the outbox folder of the shadow destination (orchestration/defs/syncs.py SHADOW)
SHADOW_FOLDER = "shadow"


def read_outbox(path: str | Path) -> list[OutboundMessage]:
    """Messages in a JSONL file, or in every *.jsonl under a folder (recursively, sorted by path).

    One `OutboundMessage.to_dict()` per line; blank lines are skipped; a decision_id seen before
    (a retried delivery) is kept once, first occurrence wins. A missing path gives []. The
    `shadow/` folder of an outbox (shadow decisions: logged, never sent) is not read: no
    customer receives those.
    """
    root = Path(path)
    if root.is_file():
        files = [root]
    elif root.is_dir():
        files = sorted(
            p
            for p in root.rglob("*.jsonl")
            if p.is_file() and SHADOW_FOLDER not in p.relative_to(root).parts
        )
    else:
        return []
    seen: set[str] = set()
    messages: list[OutboundMessage] = []
    for file in files:
        with file.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    message = OutboundMessage.from_dict(json.loads(line))
                except (json.JSONDecodeError, TypeError) as exc:
                    raise ValueError(f"{file}:{number}: not an OutboundMessage ({exc})") from exc
                if message.decision_id not in seen:
                    seen.add(message.decision_id)
                    messages.append(message)
    return messages
