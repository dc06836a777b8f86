"""What a failed in-process Dagster run says to a person: the first failing step and the
error beneath Dagster's wrappers."""

from __future__ import annotations

import dagster as dg


def describe_failure(result: dg.ExecuteInProcessResult, *, first_line: bool = False) -> str:
    """`step <key> failed: <message>` for the first failed step (its first line only when
    `first_line`, for one-line CLI errors); "the run failed" when no step says why."""
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            error = event.step_failure_data.error
            while error.cause is not None and error.cls_name.startswith("Dagster"):
                error = error.cause
            message = error.message.strip()
            if first_line:
                message = (message.splitlines() or [error.cls_name])[0]
            return f"step {event.step_key} failed: {message}"
    return "the run failed"
