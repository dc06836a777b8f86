"""A throw-away PostgreSQL cluster on loopback for the Postgres half of the test matrix.

    eval "$(python tests/postgres_server.py start)"   # prints export lines (URL, folder)
    python -m pytest -q tests/test_postgres.py
    python tests/postgres_server.py stop "$JOURNEYMAN_TEST_POSTGRES_DIR"

`start` runs Debian's PostgreSQL binaries (`apt-get install postgresql`) from a new temporary
folder on a free 127.0.0.1 port, as the `postgres` user when run as root (initdb refuses root).
TCP logins need a password (scram-sha-256), so wrong credentials fail as on a real server. The
URL it exports, JOURNEYMAN_TEST_POSTGRES_URL, holds that password: it is a throw-away test
secret, and the tests check it never reaches a message. `stop` stops the cluster and removes
the folder.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

URL_ENV = "JOURNEYMAN_TEST_POSTGRES_URL"
DIR_ENV = "JOURNEYMAN_TEST_POSTGRES_DIR"
SUPERUSER = "journeyman"
#: settings for a disposable cluster: speed over durability
SERVER_OPTIONS = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    "-c max_connections=120 -c shared_buffers=128MB"
)


def bin_dir() -> Path:
    """The newest installed PostgreSQL's bin folder (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3])
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise SystemExit("PostgreSQL is not installed: apt-get install -y postgresql")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_owner(command: list[str]) -> list[str]:
    """The command as the `postgres` user when this process is root."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def start() -> dict[str, str]:
    """Create and start a cluster; returns the variables to export."""
    folder = Path(tempfile.mkdtemp(prefix="journeyman-pg-"))
    data, password_file = folder / "data", folder / "password"
    password = secrets.token_hex(12)
    password_file.write_text(password + "\n")
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        for path in (folder, password_file):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    binaries, port = bin_dir(), free_port()
    run = {"check": True, "capture_output": True, "text": True}
    subprocess.run(
        _as_owner(
            [
                str(binaries / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--pwfile",
                str(password_file),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
            ]
        ),
        **run,
    )
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 {SERVER_OPTIONS}"
    subprocess.run(
        _as_owner(
            [str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log")]
            + ["-w", "start"]
        ),
        **run,
    )
    url = f"postgresql+psycopg://{SUPERUSER}:{password}@127.0.0.1:{port}/postgres"
    return {URL_ENV: url, DIR_ENV: str(folder)}


def stop(folder: str) -> None:
    """Stop the cluster in `folder` (if running) and remove the folder."""
    data = Path(folder) / "data"
    if (data / "postmaster.pid").exists():
        subprocess.run(
            _as_owner([str(bin_dir() / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            check=False,
            capture_output=True,
        )
    shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str]) -> int:
    if argv[:1] == ["start"]:
        try:
            exports = start()
        except subprocess.CalledProcessError as exc:
            print(f"cannot start PostgreSQL: {exc.stderr or exc.stdout}", file=sys.stderr)
            return 1
        for name, value in exports.items():
            print(f"export {name}={shlex.quote(value)}")
        return 0
    if argv[:1] == ["stop"] and len(argv) == 2:
        stop(argv[1])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
