"""Key rings: the AES-GCM keys that seal confidential values at rest, the ES256 keys that
sign access tokens, and the audit trail's Ed25519 and HMAC keys.

Both are JSON documents `{"active": KID, "keys": {KID: material}}`, given inline in the
environment or as a file. In development they are generated under `data_dir/keys` on
first use; in production they must be configured, or the server refuses to start.

A file-backed ring notices when the file changes (for example after `habeas keys rotate`),
so running servers pick up a new key without a restart.
"""

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc.jwk import ECKey, KeySet

from app.core.config import Environment, Settings

ENVELOPE_VERSION = 1
NONCE_BYTES = 12
KEY_BYTES = 32
# How often a file-backed ring looks at its file's modification time.
RELOAD_CHECK_SECONDS = 2.0


class KeyConfigurationError(RuntimeError):
    """The keys are missing or malformed; the server must not start."""


class UndecryptableValue(RuntimeError):
    """A sealed value failed authentication: tampered, copied from another row or column,
    or sealed under a key this ring does not hold."""


def _new_kid() -> str:
    return time.strftime("%Y%m%d") + "-" + secrets.token_hex(4)


@dataclass(frozen=True)
class _RingDocument:
    active: str
    keys: Mapping[str, Any]


def _parse(text: str, what: str) -> _RingDocument:
    try:
        document = json.loads(text)
        active = document["active"]
        keys = document["keys"]
    except (ValueError, KeyError, TypeError) as error:
        raise KeyConfigurationError(f"{what}: not a key ring document ({error}).") from None
    if not isinstance(keys, dict) or active not in keys:
        raise KeyConfigurationError(f"{what}: the active key {active!r} is not in the ring.")
    return _RingDocument(active, keys)


def write_key_file(path: Path, document: Mapping[str, Any]) -> None:
    """Write atomically with owner-only permissions (the file holds secret keys)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_suffix(path.suffix + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(document, handle, indent=2)
    os.replace(temporary, path)


class _RingSource:
    """Where a ring's document comes from: inline text, or a file that may change."""

    def __init__(self, inline: str | None, path: Path | None, what: str) -> None:
        self.inline = inline
        self.path = path
        self.what = what
        self._mtime: float | None = None
        self._checked_at = 0.0

    def read(self) -> _RingDocument:
        if self.inline is not None:
            return _parse(self.inline, self.what)
        assert self.path is not None
        try:
            self._mtime = self.path.stat().st_mtime
            text = self.path.read_text()
        except OSError as error:
            raise KeyConfigurationError(f"{self.what}: cannot read {self.path}: {error}") from None
        self._checked_at = time.monotonic()
        return _parse(text, f"{self.what} ({self.path})")

    def changed(self, *, force: bool = False) -> bool:
        if self.path is None:
            return False
        now = time.monotonic()
        if not force and now - self._checked_at < RELOAD_CHECK_SECONDS:
            return False
        self._checked_at = now
        try:
            return self.path.stat().st_mtime != self._mtime
        except OSError:
            return False


def _source(
    settings: Settings, inline: str | None, *, path: Path | None, default_name: str, what: str
) -> _RingSource:
    if inline is not None:
        return _RingSource(inline, None, what)
    if path is not None:
        return _RingSource(None, path, what)
    if settings.env is Environment.production:
        raise KeyConfigurationError(
            f"{what}: production needs configured keys; development keys are never used."
        )
    return _RingSource(None, settings.keys_dir / default_name, what)


# Confidential values -------------------------------------------------------------------


def new_data_key() -> str:
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()


def _symmetric_key(what: str, kid: str, material: Any) -> bytes:
    """A 256-bit key given in base64, under a short ASCII key id."""
    try:
        raw = base64.b64decode(material, validate=True)
    except (ValueError, TypeError):
        raw = b""
    if len(raw) != KEY_BYTES or not kid.isascii() or not 0 < len(kid) < 64:
        raise KeyConfigurationError(f"{what}: key {kid!r} is not valid.")
    return raw


def _associated_data(table: str, column: str, row_id: object, *, kid: str) -> bytes:
    # Binding the place and the key id means a value copied to another row or column, or
    # relabelled with another key id, fails authentication instead of decrypting.
    return f"habeas|{table}|{column}|{row_id}|{kid}".encode()


class DataKeyRing:
    def __init__(self, source: _RingSource) -> None:
        self._source = source
        self._load()

    def _load(self) -> None:
        document = self._source.read()
        keys = {
            kid: AESGCM(_symmetric_key(self._source.what, kid, material))
            for kid, material in document.keys.items()
        }
        self._keys = keys
        self.active_kid = document.active

    def _refresh(self, *, force: bool = False) -> None:
        if self._source.changed(force=force):
            self._load()

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def seal(self, table: str, column: str, row_id: object, *, plaintext: bytes) -> bytes:
        self._refresh()
        kid = self.active_kid
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._keys[kid].encrypt(
            nonce, plaintext, _associated_data(table, column, row_id, kid=kid)
        )
        header = bytes([ENVELOPE_VERSION, len(kid)]) + kid.encode()
        return header + nonce + sealed

    def open(self, table: str, column: str, row_id: object, *, envelope: bytes) -> bytes:
        kid = key_id_of(envelope)
        if kid not in self._keys:
            # A key added by a rotation since this process loaded the ring.
            self._refresh(force=True)
        key = self._keys.get(kid)
        if key is None:
            raise UndecryptableValue(f"no key {kid!r} in the ring")
        start = 2 + len(kid)
        nonce, sealed = envelope[start : start + NONCE_BYTES], envelope[start + NONCE_BYTES :]
        try:
            return key.decrypt(nonce, sealed, _associated_data(table, column, row_id, kid=kid))
        except InvalidTag:
            raise UndecryptableValue(
                f"{table}.{column} of {row_id} failed authentication"
            ) from None

    def seal_json(self, table: str, column: str, row_id: object, *, value: Any) -> bytes | None:
        if value is None:
            return None
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return self.seal(table, column, row_id, plaintext=text.encode())

    def open_json(self, table: str, column: str, row_id: object, *, envelope: bytes | None) -> Any:
        if envelope is None:
            return None
        return json.loads(self.open(table, column, row_id, envelope=envelope))


def key_id_of(envelope: bytes) -> str:
    if len(envelope) < 2 or envelope[0] != ENVELOPE_VERSION:
        raise UndecryptableValue("not a sealed value")
    length = envelope[1]
    return envelope[2 : 2 + length].decode("ascii", errors="replace")


def data_key_ring(settings: Settings) -> DataKeyRing:
    source = _source(
        settings,
        settings.data_keys,
        path=settings.data_key_file,
        default_name="data.json",
        what="data keys",
    )
    if source.path is not None and not source.path.exists() and settings.data_key_file is None:
        kid = _new_kid()
        write_key_file(source.path, {"active": kid, "keys": {kid: new_data_key()}})
    return DataKeyRing(source)


def rotate_data_key_file(path: Path) -> str:
    """Add a new data key to the file and make it the one new values are sealed with."""
    document = _parse(path.read_text(), str(path))
    kid = _new_kid()
    write_key_file(path, {"active": kid, "keys": {**document.keys, kid: new_data_key()}})
    return kid


def retire_data_keys(path: Path, keep: frozenset[str]) -> list[str]:
    document = _parse(path.read_text(), str(path))
    retired = [kid for kid in document.keys if kid not in keep and kid != document.active]
    kept = {kid: key for kid, key in document.keys.items() if kid not in retired}
    write_key_file(path, {"active": document.active, "keys": kept})
    return retired


# Access-token signing -------------------------------------------------------------------

SIGNING_ALGORITHM = "ES256"


def new_signing_key(kid: str | None = None) -> dict[str, Any]:
    key = ECKey.generate_key("P-256", parameters={"kid": kid or _new_kid()}, private=True)
    return dict(key.as_dict(private=True))


class SigningKeyRing:
    def __init__(self, source: _RingSource) -> None:
        self._source = source
        self._load()

    def _load(self) -> None:
        document = self._source.read()
        try:
            keys = {kid: ECKey.import_key(dict(jwk, kid=kid)) for kid, jwk in document.keys.items()}
        except (ValueError, TypeError, KeyError) as error:
            raise KeyConfigurationError(f"{self._source.what}: {error}") from None
        if any(key.as_dict().get("crv") != "P-256" or not key.is_private for key in keys.values()):
            raise KeyConfigurationError(f"{self._source.what}: every key must be a P-256 pair.")
        self.active = keys[document.active]
        self.verification_keys = KeySet(list(keys.values()))
        self._kids = frozenset(keys)

    def refresh_if_unknown(self, kid: str) -> None:
        if kid not in self._kids:
            self._refresh(force=True)

    def still_holds(self, kid: str) -> bool:
        """Whether the ring (re-read when its file changed) still holds this key."""
        self._refresh()
        return kid in self._kids

    def _refresh(self, *, force: bool = False) -> None:
        if self._source.changed(force=force):
            self._load()

    def signing_key(self) -> ECKey:
        self._refresh()
        return self.active

    def public_jwks(self) -> dict[str, Any]:
        return {"keys": [key.as_dict(private=False) for key in self.verification_keys.keys]}


def signing_key_ring(settings: Settings) -> SigningKeyRing:
    source = _source(
        settings,
        settings.jwt_keys,
        path=settings.jwt_key_file,
        default_name="jwt.json",
        what="JWT keys",
    )
    if source.path is not None and not source.path.exists() and settings.jwt_key_file is None:
        key = new_signing_key()
        write_key_file(source.path, {"active": key["kid"], "keys": {key["kid"]: key}})
    return SigningKeyRing(source)


def rotate_signing_key_file(path: Path) -> str:
    document = _parse(path.read_text(), str(path))
    key = new_signing_key()
    write_key_file(path, {"active": key["kid"], "keys": {**document.keys, key["kid"]: key}})
    return str(key["kid"])


# The audit trail's keys -----------------------------------------------------------------
#
# Each entry holds an Ed25519 key that signs checkpoints of the chain head, and an HMAC key
# that turns confidential values into fingerprints for the trail ("the address changed to
# the value with this fingerprint"): an investigator holding the key can check a claimed
# value; nobody reading the trail learns it. Neither key is ever stored in the database.

AUDIT_FINGERPRINT_BYTES = 16


def new_audit_key() -> dict[str, str]:
    seed = Ed25519PrivateKey.generate().private_bytes_raw()
    return {
        "signing": base64.b64encode(seed).decode(),
        "fingerprint": base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode(),
    }


@dataclass(frozen=True)
class _AuditKey:
    signing: Ed25519PrivateKey
    fingerprint: bytes


class AuditKeyRing:
    def __init__(self, source: _RingSource) -> None:
        self._source = source
        self._load()

    def _load(self) -> None:
        document = self._source.read()
        keys: dict[str, _AuditKey] = {}
        for kid, material in document.keys.items():
            try:
                seed = base64.b64decode(material["signing"], validate=True)
                fingerprint = base64.b64decode(material["fingerprint"], validate=True)
                signing = Ed25519PrivateKey.from_private_bytes(seed)
            except (ValueError, TypeError, KeyError):
                raise KeyConfigurationError(
                    f"{self._source.what}: key {kid!r} is not valid."
                ) from None
            if len(fingerprint) != KEY_BYTES or not kid.isascii() or not 0 < len(kid) < 64:
                raise KeyConfigurationError(f"{self._source.what}: key {kid!r} is not valid.")
            keys[kid] = _AuditKey(signing, fingerprint)
        self._keys = keys
        self.active_kid = document.active

    def _refresh(self) -> None:
        if self._source.changed():
            self._load()

    def sign(self, statement: bytes) -> tuple[str, bytes]:
        self._refresh()
        kid = self.active_kid
        return kid, self._keys[kid].signing.sign(statement)

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        self._refresh()
        return {kid: key.signing.public_key() for kid, key in self._keys.items()}

    def digests(self, value: bytes) -> list[str]:
        """Keyed SHA-256 digests (hex) of a value under every key, the active key's first:
        comparable with one made before a rotation, and useless to anyone guessing values
        without the key."""
        self._refresh()
        ordered = [self.active_kid, *(kid for kid in self._keys if kid != self.active_kid)]
        return [
            hmac.new(self._keys[kid].fingerprint, value, hashlib.sha256).hexdigest()
            for kid in ordered
        ]

    def fingerprint(self, canonical_value: bytes) -> str:
        self._refresh()
        kid = self.active_kid
        mac = hmac.new(self._keys[kid].fingerprint, canonical_value, hashlib.sha256)
        return f"hmac-sha256:{kid}:{mac.hexdigest()[: 2 * AUDIT_FINGERPRINT_BYTES]}"


def public_key_text(key: Ed25519PublicKey) -> str:
    return base64.b64encode(key.public_bytes_raw()).decode()


def public_key_from_text(text: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except (ValueError, TypeError):
        raise KeyConfigurationError("not an Ed25519 public key in base64") from None


def audit_key_ring(settings: Settings) -> AuditKeyRing:
    source = _source(
        settings,
        settings.audit_keys,
        path=settings.audit_key_file,
        default_name="audit.json",
        what="audit keys",
    )
    if source.path is not None and not source.path.exists() and settings.audit_key_file is None:
        kid = _new_kid()
        write_key_file(source.path, {"active": kid, "keys": {kid: new_audit_key()}})
    return AuditKeyRing(source)


def rotate_audit_key_file(path: Path) -> str:
    """A new active key. The old ones stay: they verify older checkpoints and
    fingerprints."""
    document = _parse(path.read_text(), str(path))
    kid = _new_kid()
    write_key_file(path, {"active": kid, "keys": {**document.keys, kid: new_audit_key()}})
    return kid


# Backups -------------------------------------------------------------------------------
#
# Backups (app/ops/backup.py) are encrypted under keys of their own, kept apart from the
# dumps and from the other keys. Old keys stay in the ring: they open older backups.


class BackupKeyRing:
    def __init__(self, source: _RingSource) -> None:
        document = source.read()
        self.what = source.what
        self.active_kid = document.active
        self._keys = {
            kid: _symmetric_key(source.what, kid, material)
            for kid, material in document.keys.items()
        }

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def key(self, kid: str) -> bytes | None:
        return self._keys.get(kid)


def backup_key_ring(settings: Settings) -> BackupKeyRing:
    source = _source(
        settings,
        settings.backup_keys,
        path=settings.backup_key_file,
        default_name="backup.json",
        what="backup keys",
    )
    if source.path is not None and not source.path.exists() and settings.backup_key_file is None:
        kid = _new_kid()
        write_key_file(source.path, {"active": kid, "keys": {kid: new_data_key()}})
    return BackupKeyRing(source)


def rotate_backup_key_file(path: Path) -> str:
    """A new active key for the backups made from now on; the old ones stay, to open the
    backups made before."""
    document = _parse(path.read_text(), str(path))
    kid = _new_kid()
    write_key_file(path, {"active": kid, "keys": {**document.keys, kid: new_data_key()}})
    return kid
