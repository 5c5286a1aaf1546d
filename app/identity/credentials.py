"""Passwords (argon2id), one-time codes (TOTP, each usable once), opaque tokens and
enrolment codes."""

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from app.core.config import Settings

TOTP_ISSUER = "Habeas"
TOTP_PERIOD_SECONDS = 30
# A code from the previous or next 30-second step is accepted, for clocks that drift.
TOTP_DRIFT_STEPS = 1


class Passwords:
    def __init__(self, settings: Settings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.password_time_cost,
            memory_cost=settings.password_memory_kib,
            parallelism=settings.password_parallelism,
        )
        # Verified instead of a real hash when the account does not exist, so that an
        # unknown user takes as long to refuse as a wrong password.
        self._decoy = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash or self._decoy, password) and (
                stored_hash is not None
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str | None) -> bool:
        return stored_hash is not None and self._hasher.check_needs_rehash(stored_hash)


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=TOTP_ISSUER)


def matching_totp_step(secret: str, code: str, last_used_step: int) -> int | None:
    """The time step the code belongs to, if it is current and newer than the last one used.

    Refusing every step up to the last accepted one makes a code single-use, and also
    refuses an older code captured before it.
    """
    if not (code.isascii() and code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    current = int(time.time()) // TOTP_PERIOD_SECONDS
    found = None
    for step in range(current - TOTP_DRIFT_STEPS, current + TOTP_DRIFT_STEPS + 1):
        # Compare every candidate, so timing does not tell which step matched.
        if hmac.compare_digest(totp.generate_otp(step), code) and step > last_used_step:
            found = step
    return found


@dataclass(frozen=True)
class OpaqueToken:
    value: str
    digest: bytes


def new_opaque_token() -> OpaqueToken:
    value = secrets.token_urlsafe(32)
    return OpaqueToken(value, digest_of(value))


def digest_of(value: str) -> bytes:
    # 256 random bits need no slow hash: SHA-256 is enough to make a stolen table useless.
    return hashlib.sha256(value.encode()).digest()


# 160 random bits, shown as eight groups of four base32 letters and digits (easy to read
# out or type; case, dashes and spaces do not matter when it is entered).
ENROLMENT_CODE_BYTES = 20
ENROLMENT_CODE_GROUP = 4


def new_enrolment_code() -> OpaqueToken:
    letters = base64.b32encode(secrets.token_bytes(ENROLMENT_CODE_BYTES)).decode()
    shown = "-".join(
        letters[start : start + ENROLMENT_CODE_GROUP]
        for start in range(0, len(letters), ENROLMENT_CODE_GROUP)
    )
    return OpaqueToken(shown, enrolment_code_digest(shown))


def enrolment_code_digest(code: str) -> bytes:
    return digest_of("".join(code.split()).replace("-", "").upper())
