"""Where the command line writes and what it shares: a stderr console for errors and progress, a
stdout console for results, `fail` (one `error:` line and an exit status) and the date option
type, used by every subcommand."""

from __future__ import annotations

import sys
from datetime import date

import click
from rich.console import Console
from rich.markup import escape

console = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 120)


def fail(message: str, code: int = 2) -> None:
    """Print one `error:` line (never wrapped, never read as markup) and exit with `code`."""
    console.print(f"[red]error:[/red] {escape(' '.join(message.split()))}", soft_wrap=True)
    sys.exit(code)


class DateParam(click.ParamType):
    """A YYYY-MM-DD date; anything else is a one-line usage error."""

    name = "YYYY-MM-DD"

    def convert(self, value, param, ctx):  # noqa: ANN001, ANN201 - click's signature
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not a date like 2026-03-02", param, ctx)
