"""A destination that appends each message as one JSON line: a dry run of delivery.

Files are `<root>/<destination>/<YYYY-MM-DD of send_at>.jsonl`. A batch is written with one
`write` + fsync, so a record is either wholly in the file or absent; `lookup` reads the files
to settle records a crashed run left in flight.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path

from journeyman.connectors.destination import (
    BatchResult,
    DeliveryStatus,
    Destination,
    DestinationError,
    Lookup,
    MessageBatch,
)


class FileDestination(Destination):
    """Writes messages to JSONL files instead of an API."""

    max_batch_size = 10_000
    schedule_window = (timedelta(0), None)  # a dry run records the intended send time as is
    can_lookup = True

    def __init__(self, root: str | Path, name: str = "file") -> None:
        self.name = name
        self.root = Path(root).absolute()

    @property
    def folder(self) -> Path:
        return self.root / self.name

    def check(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DestinationError(
                f"file destination {self.name!r}: cannot create {self.folder} ({exc.strerror}); "
                "choose a writable outbox folder"
            ) from exc
        if not os.access(self.folder, os.W_OK):
            raise DestinationError(f"file destination {self.name!r}: {self.folder} is not writable")

    def send_batch(self, batch: MessageBatch, now: datetime) -> BatchResult:
        by_day: dict[str, list[str]] = {}
        for message in batch.messages():
            by_day.setdefault(message.send_at[:10], []).append(
                json.dumps(message.to_dict(), sort_keys=True)
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        for day, lines in sorted(by_day.items()):
            with open(self.folder / f"{day}.jsonl", "a", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        return BatchResult.uniform(len(batch), DeliveryStatus.DELIVERED)

    def lookup(self, batch: MessageBatch) -> dict[str, Lookup]:
        """Which records reached the files (held) and which did not (absent): our own output,
        read back, is definitive."""
        wanted = set(batch.decision_id)
        found: set[str] = set()
        if self.folder.exists():
            for path in sorted(self.folder.glob("*.jsonl")):
                with open(path, encoding="utf-8") as fh:
                    for line in fh:
                        try:
                            decision_id = json.loads(line)["decision_id"]
                        except (ValueError, KeyError):
                            continue  # a torn last line from a crash: that record was not written
                        if decision_id in wanted:
                            found.add(decision_id)
        return {d: Lookup.HELD if d in found else Lookup.ABSENT for d in wanted}
