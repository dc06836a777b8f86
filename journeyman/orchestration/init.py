"""`journeyman init DIR`: a new project folder with an example agent, a destination catalog
(the `file` destination, vendors commented out, no secrets), `.env.example` (the environment
variables journeyman reads, secrets empty) and a short README.

The files are copied from `project_template/` next to this module. Names starting with a dot
are stored there without it (`env.example` → `.env.example`) so that package-data globs include
them.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import click

TEMPLATE_DIR = Path(__file__).resolve().parent / "project_template"
#: template file → its path in the new project, in the order they are listed
FILES = {
    "README.md": "README.md",
    "agents/winback.yml": "agents/winback.yml",
    "destinations.yml": "destinations.yml",
    "env.example": ".env.example",
    "gitignore": ".gitignore",
}


class InitError(RuntimeError):
    """The project folder cannot be created; the message says why and what to do."""


def create_project(directory: Path) -> list[Path]:
    """Copy the project template into `directory` (absent or empty); returns the files written.
    Nothing is written when `directory` is unusable."""
    directory = directory.expanduser()
    if directory.exists() or directory.is_symlink():
        if not directory.is_dir():
            raise InitError(f"{directory} exists and is not a folder; choose a new folder")
        if any(directory.iterdir()):
            raise InitError(
                f"{directory} is not empty; choose a new or empty folder (nothing was written)"
            )
    missing = [name for name in FILES if not (TEMPLATE_DIR / name).is_file()]
    if missing:
        raise InitError(
            f"the project template is incomplete in this journeyman install ({TEMPLATE_DIR} "
            f"lacks {', '.join(missing)}); reinstall journeyman"
        )
    written = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for source, target in FILES.items():
            path = directory / target
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(TEMPLATE_DIR / source, path)
            written.append(path)
    except OSError as exc:
        raise InitError(
            f"cannot write {exc.filename or directory} ({exc.strerror or exc}); choose a folder "
            "you can write to"
        ) from None
    return written


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=True, path_type=Path))
def init(directory: Path) -> None:
    """Create a new project folder DIRECTORY (absent or empty): an example agent
    (agents/winback.yml), a destination catalog (destinations.yml: the `file` destination,
    vendors commented out), .env.example and a README. Then `journeyman validate` with
    JOURNEYMAN_AGENTS and JOURNEYMAN_DESTINATIONS pointing there (.env.example sets them)."""
    try:
        written = create_project(directory)
    except InitError as exc:
        click.echo(f"error: {' '.join(str(exc).split())}", err=True)
        sys.exit(2)
    root = directory.expanduser()
    click.echo(f"created {root}: {', '.join(str(p.relative_to(root)) for p in written)}")
    click.echo(
        f"next: cd {root} && cp .env.example .env && set -a && . ./.env && set +a && "
        "journeyman validate"
    )
