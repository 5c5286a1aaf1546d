"""Backups: an encrypted, authenticated `pg_dump` with a manifest, and a restore into an
empty database that verifies what it restored.

A backup file (version 1) is:

    b"HABEAS-BACKUP 1\\n"
    the header: one line of JSON (backup id, key id, cipher), ending in b"\\n"
    the dump: `pg_dump --format=custom` output, encrypted (below)
    the manifest: JSON, encrypted the same way
    the trailer: the two ciphertexts' lengths (8 bytes each, big-endian) and b"HBEND001"

Each part is a Tink streaming AEAD ciphertext (AES256_GCM_HKDF_1MB: a key of its own
derived with HKDF-SHA256 from the backup key and a random salt, then AES-256-GCM over
1 MiB segments, their order and the last one authenticated): a published format that Tink
reads in Java, Go, C++ and Python, so a backup opens without Habeas too. A part's
associated data is its name and the header, so that no part can be moved into another
file or relabelled. The manifest comes last because it holds the dump's SHA-256, known
once the dump is written: the dump is encrypted as pg_dump streams it, never held whole
in memory nor written anywhere in clear.

The manifest is read in the snapshot the dump is made in (`pg_export_snapshot`, then
`pg_dump --snapshot`), so the audit head, key ids and row counts it states are the dump's.
Keys are never in a backup: the manifest names the ones a restore needs.
"""

import asyncio
import hashlib
import io
import json
import os
import re
import shutil
import struct
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import asyncpg
import tink
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from tink import secret_key_access, streaming_aead
from tink.proto import aes_gcm_hkdf_streaming_pb2, common_pb2, tink_pb2

from app.audit import service as audit_service
from app.core import embedded
from app.core.clock import utcnow
from app.core.config import Settings
from app.core.crypto import BackupKeyRing, DataKeyRing
from app.core.db import create_engine, session_factory
from app.core.migrations import head_revision
from app.ops.keys import key_ids_on, open_every_sealed_value

FORMAT = "habeas-backup/1"
MAGIC = b"HABEAS-BACKUP 1\n"
CIPHER = "tink-streaming-aead/AES256_GCM_HKDF_1MB"
SEGMENT_BYTES = 1 << 20
CHUNK_BYTES = 1 << 20
MAX_HEADER_BYTES = 4096
MAX_MANIFEST_BYTES = 1 << 24
_TRAILER = struct.Struct(">QQ8s")
TRAILER_MARK = b"HBEND001"
_TINK_KEY_TYPE = "type.googleapis.com/google.crypto.tink.AesGcmHkdfStreamingKey"
# How much of a failing pg_dump's or pg_restore's own message is shown.
TOOL_MESSAGE_CHARS = 2000

NOT_AUTHENTIC = (
    "the backup file failed authentication: it was changed or damaged after it was"
    " written, or the key of its id is not the one it was made with"
)


class BackupError(RuntimeError):
    """A backup or a restore refused or failed; the message tells the operator why."""


# Where keys come from, for messages ---------------------------------------------------


def key_places(settings: Settings) -> dict[str, str]:
    """Per ring ("data", "audit", "backup"): the setting or file it is read from."""

    def place(ring: str, inline: str | None, path: Path | None) -> str:
        variable = f"HABEAS_{ring.upper()}_KEY"
        if inline is not None:
            return f"{variable}S"
        if path is not None:
            return f"{variable}_FILE ({path})"
        return (
            f"{settings.keys_dir / (ring + '.json')} (the development key file;"
            f" {variable}_FILE names another)"
        )

    return {
        "data": place("data", settings.data_keys, settings.data_key_file),
        "audit": place("audit", settings.audit_keys, settings.audit_key_file),
        "backup": place("backup", settings.backup_keys, settings.backup_key_file),
    }


# PostgreSQL's client programs ------------------------------------------------------------


@dataclass(frozen=True)
class Client:
    """A pg_dump or pg_restore, and the PostgreSQL major version it comes from."""

    path: Path
    major: int
    version: str


_VERSION = re.compile(r"\(PostgreSQL\) (\d+)(\.\d+)?")


def postgres_clients(program: str) -> list[Client]:
    """Every copy of `program` found: the embedded server's, Debian's per-version
    directories, and the one on PATH."""
    places = [
        embedded.client_programs_dir() / program,
        *sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{program}")),
    ]
    on_path = shutil.which(program)
    if on_path is not None:
        places.append(Path(on_path))
    found: dict[Path, Client] = {}
    for place in places:
        real = place.resolve()
        if real in found or not os.access(real, os.X_OK):
            continue
        printed = subprocess.run(  # noqa: S603 (a PostgreSQL program asked its version)
            [str(real), "--version"], capture_output=True, text=True, check=False, timeout=30
        ).stdout
        match = _VERSION.search(printed)
        if match is not None:
            found[real] = Client(real, int(match[1]), match[0].split(" ", 1)[1])
    return list(found.values())


def choose_client(program: str, *, at_least: int, clients: Iterable[Client]) -> Client:
    """The copy of `program` of the lowest major version that is still at least
    `at_least`: pg_dump reads servers up to its own version, and pg_restore reads archives
    up to its own version."""
    known = list(clients)
    fitting = [client for client in known if client.major >= at_least]
    if not fitting:
        seen = ", ".join(f"{client.path} ({client.version})" for client in known) or "none"
        raise BackupError(
            f"no {program} of PostgreSQL {at_least} or newer was found (found: {seen});"
            f" install PostgreSQL {at_least}'s client programs (e.g. the Debian package"
            f" postgresql-client-{at_least}) and put them on PATH"
        )
    return min(fitting, key=lambda client: client.major)


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _libpq(database_url: str) -> tuple[str, dict[str, str]]:
    """A connection string for the client programs, and their environment: the password
    goes there (PGPASSWORD), never on a command line that `ps` shows."""
    parts = embedded.asyncpg_connect_kwargs(database_url)
    names = (("host", "host"), ("port", "port"), ("user", "user"), ("dbname", "database"))
    conninfo = " ".join(
        f"{name}={_quoted(str(parts[key]))}" for name, key in names if parts.get(key)
    )
    environment = dict(os.environ)
    if parts.get("password"):
        environment["PGPASSWORD"] = str(parts["password"])
    return conninfo, environment


async def _server_version(connection: asyncpg.Connection) -> tuple[str, int]:
    text = await connection.fetchval("SHOW server_version")
    number = int(await connection.fetchval("SHOW server_version_num"))
    return str(text).split(" ", 1)[0], number // 10_000


# Encryption --------------------------------------------------------------------------------


def _streaming_aead(key: bytes) -> Any:
    """Tink's streaming AEAD on one raw 256-bit key (a keyset of that key alone)."""
    streaming_aead.register()
    key_proto = aes_gcm_hkdf_streaming_pb2.AesGcmHkdfStreamingKey(version=0, key_value=key)
    key_proto.params.ciphertext_segment_size = SEGMENT_BYTES
    key_proto.params.derived_key_size = 32
    key_proto.params.hkdf_hash_type = common_pb2.SHA256
    keyset = tink_pb2.Keyset(
        primary_key_id=1,
        key=[
            tink_pb2.Keyset.Key(
                key_data=tink_pb2.KeyData(
                    type_url=_TINK_KEY_TYPE,
                    value=key_proto.SerializeToString(),
                    key_material_type=tink_pb2.KeyData.SYMMETRIC,
                ),
                status=tink_pb2.ENABLED,
                key_id=1,
                output_prefix_type=tink_pb2.RAW,
            )
        ],
    )
    handle = tink.proto_keyset_format.parse(keyset.SerializeToString(), secret_key_access.TOKEN)
    return handle.primitive(streaming_aead.StreamingAead)


def _associated_data(part: str, header: bytes) -> bytes:
    return b"habeas-backup|" + part.encode() + b"|" + header


class _Part(io.RawIOBase):
    """The backup file seen by Tink's encrypting stream, which closes its destination when
    it ends: the file goes on after each part. Counts what the part wrote."""

    def __init__(self, file: BinaryIO) -> None:
        super().__init__()
        self._file = file
        self.written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        written = self._file.write(data)
        self.written += written
        return written


class _Region(io.RawIOBase):
    """One part of the backup file, for Tink's decrypting stream, which reads to the end
    of what it is given."""

    def __init__(self, file: io.BufferedReader, start: int, length: int) -> None:
        super().__init__()
        self._file = file
        self._position = start
        self._end = start + length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self._end - self._position)
        if wanted <= 0:
            return 0
        self._file.seek(self._position)
        read = self._file.readinto(memoryview(buffer)[:wanted])
        self._position += read
        return read


# Creating a backup -------------------------------------------------------------------------


async def _row_counts(connection: asyncpg.Connection) -> dict[str, int]:
    tables = await connection.fetch(
        "SELECT CASE WHEN schemaname = 'public' THEN tablename"
        " ELSE schemaname || '.' || tablename END AS name,"
        " quote_ident(schemaname) || '.' || quote_ident(tablename) AS qualified"
        " FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        " ORDER BY 1"
    )
    return {
        row["name"]: await connection.fetchval(
            f"SELECT count(*) FROM {row['qualified']}"  # noqa: S608 (quoted catalog names)
        )
        for row in tables
    }


async def _audit_head(connection: asyncpg.Connection) -> dict[str, Any]:
    """The last event of the chain itself (not `audit_head`, which verification never
    trusts either); seq 0 and the genesis hash for an empty trail."""
    row = await connection.fetchrow("SELECT seq, hash FROM audit_event ORDER BY seq DESC LIMIT 1")
    if row is None:
        return {"seq": 0, "hash": bytes(32).hex()}
    return {"seq": row["seq"], "hash": bytes(row["hash"]).hex()}


async def _snapshot_facts(connection: asyncpg.Connection) -> dict[str, Any]:
    try:
        revision = await connection.fetchval("SELECT version_num FROM alembic_version")
    except asyncpg.UndefinedTableError:
        raise BackupError("the database has no schema yet: nothing to back up") from None
    if revision != head_revision():
        raise BackupError(
            f"the database is at schema revision {revision} and this version of Habeas"
            f" knows {head_revision()}: back it up with the version it was migrated by,"
            " or run `habeas migrate` first"
        )
    checkpoint_keys = await connection.fetch(
        "SELECT DISTINCT key_id FROM audit_checkpoint ORDER BY key_id"
    )
    return {
        "schema_revision": revision,
        "audit_head": await _audit_head(connection),
        "data_key_ids": sorted(await key_ids_on(connection)),
        "checkpoint_key_ids": [row["key_id"] for row in checkpoint_keys],
        "row_counts": await _row_counts(connection),
    }


async def _dump(
    client: Client, *, database_url: str, snapshot: str, sink: BinaryIO
) -> tuple[str, int]:
    """Run pg_dump in the snapshot, writing its output to `sink` as it comes; returns
    its SHA-256 and size."""
    conninfo, environment = _libpq(database_url)
    process = await asyncio.create_subprocess_exec(
        str(client.path),
        "--format=custom",
        f"--snapshot={snapshot}",
        "--no-password",
        f"--dbname={conninfo}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    errors = asyncio.ensure_future(process.stderr.read())
    digest = hashlib.sha256()
    size = 0
    try:
        while chunk := await process.stdout.read(CHUNK_BYTES):
            sink.write(chunk)
            digest.update(chunk)
            size += len(chunk)
    except BaseException:
        process.kill()
        await process.wait()
        raise
    code = await process.wait()
    message = (await errors).decode(errors="replace").strip()
    if code != 0:
        raise BackupError(f"pg_dump failed (exit {code}): {message[-TOOL_MESSAGE_CHARS:]}")
    return digest.hexdigest(), size


def _header_line(backup_id: str, key_id: str) -> bytes:
    header = {"format": FORMAT, "backup_id": backup_id, "key_id": key_id, "cipher": CIPHER}
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode() + b"\n"


async def create(
    *, database_url: str, out: Path, keys: BackupKeyRing, audit_key_ids: Iterable[str]
) -> dict[str, Any]:
    """Write an encrypted backup of the database to `out` (a new file); returns its
    manifest."""
    if await asyncio.to_thread(out.exists):
        raise BackupError(f"{out} exists already: a backup never replaces a file")
    key = keys.key(keys.active_kid)
    assert key is not None
    connection = await asyncpg.connect(**embedded.asyncpg_connect_kwargs(database_url))
    try:
        server_version, server_major = await _server_version(connection)
        pg_dump = choose_client(
            "pg_dump", at_least=server_major, clients=postgres_clients("pg_dump")
        )
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            snapshot = await connection.fetchval("SELECT pg_export_snapshot()")
            manifest: dict[str, Any] = {
                "format": FORMAT,
                "backup_id": str(uuid.uuid4()),
                "created_at": utcnow().isoformat(),
                "database": str(embedded.asyncpg_connect_kwargs(database_url)["database"]),
                "server_version": server_version,
                "pg_dump_version": pg_dump.version,
                "backup_key_id": keys.active_kid,
                "audit_key_ids": sorted(audit_key_ids),
                **await _snapshot_facts(connection),
            }

            async def dump(sink: BinaryIO) -> tuple[str, int]:
                return await _dump(pg_dump, database_url=database_url, snapshot=snapshot, sink=sink)

            await _write_file(out, aead=_streaming_aead(key), manifest=manifest, dump=dump)
    finally:
        await connection.close()
    return manifest


async def _write_file(
    out: Path,
    *,
    aead: Any,
    manifest: dict[str, Any],
    dump: Callable[[BinaryIO], Awaitable[tuple[str, int]]],
) -> None:
    """The header, the dump as `dump` writes it, the manifest (completed with the dump's
    digest and size), the trailer; under a temporary name, owner-only, until complete."""
    header = _header_line(manifest["backup_id"], manifest["backup_key_id"])
    started = time.perf_counter()
    partial = out.with_name(out.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(MAGIC + header)
            dump_part = _Part(file)
            with aead.new_encrypting_stream(
                dump_part, _associated_data("dump", header)
            ) as encrypting:
                sha256, size = await dump(encrypting)
            manifest["dump"] = {
                "format": "pg_dump custom",
                "sha256": sha256,
                "bytes": size,
                "seconds": round(time.perf_counter() - started, 3),
            }
            manifest_part = _Part(file)
            with aead.new_encrypting_stream(
                manifest_part, _associated_data("manifest", header)
            ) as encrypting:
                encrypting.write(json.dumps(manifest, sort_keys=True).encode())
            file.write(_TRAILER.pack(dump_part.written, manifest_part.written, TRAILER_MARK))
            file.flush()
            os.fsync(file.fileno())
        _publish(partial, out)
    finally:
        partial.unlink(missing_ok=True)


def _publish(partial: Path, out: Path) -> None:
    """Give the finished file its name. A hard link never replaces a file that appeared
    meanwhile; where the file system has no links, a rename after a last look."""
    try:
        os.link(partial, out)
    except FileExistsError:
        raise BackupError(f"{out} exists already: a backup never replaces a file") from None
    except OSError:
        if out.exists():
            raise BackupError(f"{out} exists already: a backup never replaces a file") from None
        partial.rename(out)


# Reading a backup ----------------------------------------------------------------------


@dataclass(frozen=True)
class BackupFile:
    path: Path
    header: bytes
    backup_id: str
    key_id: str
    dump_start: int
    dump_length: int
    manifest_length: int


def open_backup(path: Path) -> BackupFile:
    """The file's layout, checked against its size (nothing is authenticated yet)."""
    damaged = BackupError(f"{path} is not a complete Habeas backup (version 1)")
    try:
        size = path.stat().st_size
        with path.open("rb") as file:
            if file.read(len(MAGIC)) != MAGIC:
                raise damaged
            header = file.readline(MAX_HEADER_BYTES)
            fields = json.loads(header)
            backup_id, key_id, cipher = fields["backup_id"], fields["key_id"], fields["cipher"]
            file.seek(max(size - _TRAILER.size, 0))
            dump_length, manifest_length, mark = _TRAILER.unpack(file.read(_TRAILER.size))
    except (OSError, ValueError, KeyError, TypeError, struct.error) as error:
        if isinstance(error, OSError):
            raise BackupError(f"cannot read {path}: {error.strerror}") from None
        raise damaged from None
    dump_start = len(MAGIC) + len(header)
    if (
        mark != TRAILER_MARK
        or cipher != CIPHER
        or not header.endswith(b"\n")
        or dump_start + dump_length + manifest_length + _TRAILER.size != size
        or manifest_length > MAX_MANIFEST_BYTES
    ):
        raise damaged
    return BackupFile(
        path=path,
        header=header,
        backup_id=str(backup_id),
        key_id=str(key_id),
        dump_start=dump_start,
        dump_length=dump_length,
        manifest_length=manifest_length,
    )


def _aead_for(backup: BackupFile, keys: BackupKeyRing, place: str) -> Any:
    key = keys.key(backup.key_id)
    if key is None:
        raise BackupError(f"backup key {backup.key_id} is needed and not in {place}")
    return _streaming_aead(key)


def _plaintext(backup: BackupFile, aead: Any, part: str) -> Iterator[bytes]:
    """A part decrypted, chunk by chunk; BackupError as soon as a segment is not
    authentic (a chunk given out before was: each segment is authenticated alone)."""
    if part == "dump":
        start, length = backup.dump_start, backup.dump_length
    else:
        start, length = backup.dump_start + backup.dump_length, backup.manifest_length
    with backup.path.open("rb") as file:
        try:
            region = _Region(file, start, length)
            with aead.new_decrypting_stream(
                region, _associated_data(part, backup.header)
            ) as stream:
                while chunk := stream.read(CHUNK_BYTES):
                    yield chunk
        except tink.TinkError:
            raise BackupError(NOT_AUTHENTIC) from None


def read_manifest(backup: BackupFile, keys: BackupKeyRing, place: str) -> dict[str, Any]:
    aead = _aead_for(backup, keys, place)
    manifest: dict[str, Any] = json.loads(b"".join(_plaintext(backup, aead, "manifest")))
    if manifest.get("format") != FORMAT:
        raise BackupError(f"the manifest is not of the format {FORMAT}")
    return manifest


def _check_dump(backup: BackupFile, aead: Any, manifest: Mapping[str, Any]) -> None:
    """Decrypt the whole dump once before restoring anything: every segment authentic,
    none missing, and the SHA-256 the manifest states."""
    digest = hashlib.sha256()
    size = 0
    for chunk in _plaintext(backup, aead, "dump"):
        digest.update(chunk)
        size += len(chunk)
    if digest.hexdigest() != manifest["dump"]["sha256"] or size != manifest["dump"]["bytes"]:
        raise BackupError("the dump does not match the SHA-256 its manifest states")


# Restoring -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreKeys:
    backup: BackupKeyRing
    data: DataKeyRing
    audit: Mapping[str, Ed25519PublicKey]
    # Where each ring is read from (key_places), for the messages.
    places: Mapping[str, str]


def _require_keys(manifest: Mapping[str, Any], keys: RestoreKeys) -> None:
    missing = sorted(set(manifest["data_key_ids"]) - keys.data.key_ids)
    if missing:
        raise BackupError(
            f"data key{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
            f" {'are' if len(missing) > 1 else 'is'} needed and not in {keys.places['data']};"
            " without it the confidential values and TOTP secrets of this backup cannot be"
            " read"
        )
    unsigned = sorted(set(manifest["checkpoint_key_ids"]) - set(keys.audit))
    if unsigned:
        raise BackupError(
            f"audit key {', '.join(unsigned)} is needed (it signed the trail's checkpoints)"
            f" and not in {keys.places['audit']}"
        )


async def _user_tables(connection: asyncpg.Connection) -> int:
    count: int = await connection.fetchval(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')"
        " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'"
    )
    return count


async def _prepare_target(
    database_url: str, new_database: str | None, manifest: Mapping[str, Any]
) -> tuple[str, Client, bool]:
    """The URL to restore into, the pg_restore for it, and whether this command created
    the database. Refuses a server older than the backup's, and a database with tables."""
    connection = await asyncpg.connect(**embedded.asyncpg_connect_kwargs(database_url))
    try:
        version, major = await _server_version(connection)
        made_on = int(manifest["server_version"].split(".")[0])
        if major < made_on:
            raise BackupError(
                f"the backup was made on PostgreSQL {manifest['server_version']} and this"
                f" server is {version}: restore it into PostgreSQL {made_on} or newer"
            )
        made_by = int(manifest["pg_dump_version"].split(".")[0])
        pg_restore = choose_client(
            "pg_restore", at_least=max(major, made_by), clients=postgres_clients("pg_restore")
        )
        if new_database is None:
            tables = await _user_tables(connection)
            if tables:
                name = embedded.asyncpg_connect_kwargs(database_url)["database"]
                raise BackupError(
                    f"the database {name} is not empty ({tables} tables, views or"
                    " sequences): a backup is restored only into an empty database;"
                    " --database NAME restores into a new one"
                )
            return database_url, pg_restore, False
    finally:
        await connection.close()
    try:
        await embedded.create_new_database(database_url, new_database)
    except (FileExistsError, ValueError) as error:
        raise BackupError(f"{error}; --database names a new database for the restore") from None
    except asyncpg.InsufficientPrivilegeError:
        raise BackupError(
            "this database role may not create databases: restore as the owner of the"
            " tables (the role migrations run as), or into an empty database it owns"
        ) from None
    return embedded.with_database(database_url, new_database), pg_restore, True


async def _pg_restore(backup: BackupFile, aead: Any, *, client: Client, target_url: str) -> None:
    """Feed the decrypted dump to pg_restore, in one transaction: all of it or nothing."""
    conninfo, environment = _libpq(target_url)
    process = await asyncio.create_subprocess_exec(
        str(client.path),
        "--single-transaction",
        "--exit-on-error",
        # Owners and grants are the target's: `habeas serve` (or `habeas db grant ROLE`)
        # grants the application's role what it needs.
        "--no-owner",
        "--no-privileges",
        "--no-password",
        f"--dbname={conninfo}",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
    )
    assert process.stdin is not None
    assert process.stderr is not None
    errors = asyncio.ensure_future(process.stderr.read())
    try:
        for chunk in _plaintext(backup, aead, "dump"):
            process.stdin.write(chunk)
            await process.stdin.drain()
        process.stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass  # pg_restore stopped: its exit code and message say why
    except BaseException:
        # The file changed since it was checked: end pg_restore before it commits.
        process.kill()
        await process.wait()
        raise
    code = await process.wait()
    message = (await errors).decode(errors="replace").strip()
    if code != 0:
        raise BackupError(
            f"pg_restore failed (exit {code}); it ran in one transaction, so nothing was"
            f" restored: {message[-TOOL_MESSAGE_CHARS:]}"
        )


@dataclass
class RestoreReport:
    ok: bool
    database: str
    backup_id: str
    created_at: str
    schema_revision: str
    # A backup from an older version: run `habeas migrate` before serving it.
    needs_migration: bool
    row_counts: dict[str, int]
    audit: dict[str, Any]
    sealed_values: dict[str, Any]
    # Audit keys of the backup's time that this configuration lacks: the trail's
    # fingerprints made under them cannot be checked (verification does not need them).
    audit_keys_not_configured: list[str]
    problems: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


async def _verify_audit(
    target_url: str, settings: Settings, public_keys: Mapping[str, Ed25519PublicKey]
) -> dict[str, Any]:
    engine = create_engine(target_url, settings)
    try:
        async with session_factory(engine)() as session:
            return asdict(await audit_service.verify_chain(session, public_keys))
    finally:
        await engine.dispose()


async def _verify(
    target_url: str, manifest: Mapping[str, Any], *, keys: RestoreKeys, settings: Settings
) -> RestoreReport:
    """What the restored database holds, against the manifest and the configured keys."""
    connection = await asyncpg.connect(**embedded.asyncpg_connect_kwargs(target_url))
    try:
        revision = await connection.fetchval("SELECT version_num FROM alembic_version")
        counts = await _row_counts(connection)
    finally:
        await connection.close()
    audit = await _verify_audit(target_url, settings, keys.audit)
    sealed = await open_every_sealed_value(target_url, keys.data)
    report = RestoreReport(
        ok=True,
        database=str(embedded.asyncpg_connect_kwargs(target_url)["database"]),
        backup_id=manifest["backup_id"],
        created_at=manifest["created_at"],
        schema_revision=revision,
        needs_migration=revision != head_revision(),
        row_counts=counts,
        audit=audit,
        sealed_values=asdict(sealed),
        audit_keys_not_configured=sorted(set(manifest["audit_key_ids"]) - set(keys.audit)),
    )
    if revision != manifest["schema_revision"]:
        report.problems.append(
            f"the schema revision is {revision}, the manifest's {manifest['schema_revision']}"
        )
    differing = {
        table: (manifest["row_counts"].get(table), counts.get(table))
        for table in set(counts) | set(manifest["row_counts"])
        if manifest["row_counts"].get(table) != counts.get(table)
    }
    if differing:
        report.problems.append(
            "row counts differ from the manifest's: "
            + ", ".join(
                f"{table}: {want} in the backup, {have} restored"
                for table, (want, have) in sorted(differing.items())
            )
        )
    if not audit["ok"]:
        report.problems.append(f"the audit chain does not verify: {audit['problem']}")
    head = manifest["audit_head"]
    if (audit["head_seq"], audit["head_hash"]) != (head["seq"], head["hash"]):
        report.problems.append(
            f"the restored audit trail ends at event {audit['head_seq']} (hash"
            f" {audit['head_hash'][:16]}…), the manifest's at event {head['seq']} (hash"
            f" {head['hash'][:16]}…)"
        )
    if sealed.failed:
        report.problems.append(
            f"{sealed.failed} sealed values do not open with the data keys in"
            f" {keys.places['data']}: " + "; ".join(sealed.failures)
        )
    report.ok = not report.problems
    return report


async def restore(
    *,
    source: Path,
    database_url: str,
    new_database: str | None,
    keys: RestoreKeys,
    settings: Settings,
) -> RestoreReport:
    """Authenticate the whole file, then restore it into an empty (or a new) database and
    verify it: row counts and audit head against the manifest, the audit chain, and every
    sealed value opened with the configured data keys."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    backup = open_backup(source)
    manifest = read_manifest(backup, keys.backup, keys.places["backup"])
    _require_keys(manifest, keys)
    aead = _aead_for(backup, keys.backup, keys.places["backup"])
    await asyncio.to_thread(_check_dump, backup, aead, manifest)
    timings["authenticate"] = time.perf_counter() - started
    target_url, pg_restore, created = await _prepare_target(database_url, new_database, manifest)
    started = time.perf_counter()
    try:
        await _pg_restore(backup, aead, client=pg_restore, target_url=target_url)
    except BaseException:
        if created and new_database is not None:
            await embedded.drop_database(database_url, new_database)
        raise
    timings["restore"] = time.perf_counter() - started
    started = time.perf_counter()
    report = await _verify(target_url, manifest, keys=keys, settings=settings)
    timings["verify"] = time.perf_counter() - started
    report.seconds = {phase: round(seconds, 3) for phase, seconds in timings.items()}
    return report
