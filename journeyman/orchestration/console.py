"""Where the command line writes: a stderr console for errors and progress, a stdout console for
results, and `fail` — one `error:` line and an exit status — shared by every subcommand."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.markup import escape

console = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 120)


def fail(message: str, code: int = 2) -> None:
    """Print one `error:` line (never wrapped, never read as markup) and exit with `code`."""
    console.print(f"[red]error:[/red] {escape(' '.join(message.split()))}", soft_wrap=True)
    sys.exit(code)
