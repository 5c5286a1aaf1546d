"""The benchmark's own keys and account: the server runs in production mode, so it needs
configured keys, and every measured request is authenticated like a caseworker's."""

import secrets
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import aiohttp
import asyncpg
import pyotp

from app.access.principal import Role
from app.audit.journal import as_system
from app.bench.workloads import BenchIdentity
from app.core.config import Environment, Settings
from app.core.crypto import new_audit_key, new_data_key, new_signing_key, write_key_file
from app.core.db import commit, create_engine, session_factory
from app.core.embedded import asyncpg_connect_kwargs
from app.identity import service
from app.identity.schemas import UserCreate
from app.identity.tokens import unverified_parts

BENCH_USER_PREFIX = "bench-"


def key_env(data_dir: Path) -> dict[str, str]:
    """Key files kept for the benchmark under `data_dir/bench-keys` (made once)."""
    directory = data_dir / "bench-keys"
    jwt_file, data_file = directory / "jwt.json", directory / "data.json"
    audit_file = directory / "audit.json"
    if not jwt_file.exists():
        key = new_signing_key()
        write_key_file(jwt_file, {"active": key["kid"], "keys": {key["kid"]: key}})
    if not data_file.exists():
        write_key_file(data_file, {"active": "bench-1", "keys": {"bench-1": new_data_key()}})
    if not audit_file.exists():
        write_key_file(audit_file, {"active": "bench-1", "keys": {"bench-1": new_audit_key()}})
    return {
        "HABEAS_JWT_KEY_FILE": str(jwt_file),
        "HABEAS_DATA_KEY_FILE": str(data_file),
        "HABEAS_AUDIT_KEY_FILE": str(audit_file),
    }


def _settings(database_url: str, keys: Mapping[str, str]) -> Settings:
    """The server's settings, as the benchmark runs it (production, its own keys)."""
    return Settings(
        _env_file=None,
        env=Environment.production,
        database_url=database_url,
        jwt_key_file=Path(keys["HABEAS_JWT_KEY_FILE"]),
        data_key_file=Path(keys["HABEAS_DATA_KEY_FILE"]),
        audit_key_file=Path(keys["HABEAS_AUDIT_KEY_FILE"]),
    )


async def sign_in(database_url: str, base_url: str, keys: dict[str, str]) -> BenchIdentity:
    """Create a coordinator and sign it in through the API with password and TOTP."""
    from app.main import security_kit

    settings = _settings(database_url, keys)
    kit = security_kit(settings)
    engine = create_engine(database_url, settings)
    username = BENCH_USER_PREFIX + secrets.token_hex(4)
    password = secrets.token_urlsafe(18)
    try:
        async with session_factory(engine)() as session:
            # Enrolled as a person would be, and its role approved by the system.
            as_system(session, kit.audit_keys)
            data = UserCreate(username=username, role=Role.coordinator)
            _, code = await service.create_user(session, kit, data, requested_by=None)
            _, secret = await service.start_enrolment(
                session, kit, code.value, password=password, address="bench"
            )
            # The previous step's code, so that the sign-in below can use the current one.
            earlier = pyotp.TOTP(secret).at(time.time() - 30)
            await service.confirm_enrolment(
                session, kit, code.value, one_time_code=earlier, address="bench", user_agent=None
            )
            request = await service.pending_role_request_of(session, username)
            await service.decide_role_request(
                session, request.id, request.version, approve=True, decider=None
            )
            await commit(session)
    finally:
        await engine.dispose()
    async with aiohttp.ClientSession() as client:
        body = {"username": username, "password": password, "code": pyotp.TOTP(secret).now()}
        async with client.post(f"{base_url}/api/v1/auth/login", json=body) as response:
            if response.status != 200:
                raise RuntimeError(f"benchmark sign-in failed: {await response.text()}")
            token = (await response.json())["access_token"]
    _, claims = unverified_parts(token)
    return BenchIdentity(token, uuid.UUID(claims["sub"]), uuid.UUID(claims["sid"]))


async def remove_accounts(database_url: str) -> None:
    connection = await asyncpg.connect(**asyncpg_connect_kwargs(database_url))
    try:
        async with connection.transaction():
            await connection.execute(
                "DELETE FROM refresh_token WHERE session_id IN (SELECT s.id FROM user_session s"
                " JOIN app_user u ON u.id = s.user_id WHERE u.username LIKE 'bench-%')"
            )
            for table in ("role_request", "known_sign_in_address"):
                await connection.execute(
                    f"DELETE FROM {table} WHERE user_id IN"  # noqa: S608 (names from above)
                    " (SELECT id FROM app_user WHERE username LIKE 'bench-%')"
                )
            await connection.execute(
                "DELETE FROM user_session WHERE user_id IN"
                " (SELECT id FROM app_user WHERE username LIKE 'bench-%')"
            )
            await connection.execute("DELETE FROM app_user WHERE username LIKE 'bench-%'")
    finally:
        await connection.close()


BENCH_PARTNER_PREFIX = "bench-partner-"


async def partner_tokens(
    database_url: str,
    base_url: str,
    keys: dict[str, str],
    *,
    count: int,
    scopes: Sequence[str],
    agreement: Mapping[str, object],
) -> tuple[list[uuid.UUID], list[str], list[tuple[str, str]]]:
    """`count` partners with the agreement (approved by the system, as `habeas partners
    add` makes them), each with an access token from the token endpoint, and their
    credentials (client id, secret)."""
    from app.identity import partners
    from app.identity.schemas import AgreementInput, PartnerCreate
    from app.main import security_kit

    settings = _settings(database_url, keys)
    kit = security_kit(settings)
    engine = create_engine(database_url, settings)
    credentials: list[tuple[str, str]] = []
    ids: list[uuid.UUID] = []
    try:
        for _ in range(count):
            async with session_factory(engine)() as session:
                as_system(session, kit.audit_keys)
                data = PartnerCreate(
                    name=BENCH_PARTNER_PREFIX + secrets.token_hex(4),
                    scopes=list(scopes),
                    auth_method="client_secret",
                )
                partner, secret = await partners.create_partner(
                    session, kit, data, system_agreement=AgreementInput.model_validate(agreement)
                )
                assert secret is not None
                credentials.append((partner.client_id, secret))
                ids.append(partner.id)
                await commit(session)
    finally:
        await engine.dispose()
    async with aiohttp.ClientSession(base_url=base_url) as client:
        tokens = [await partner_token(client, credential) for credential in credentials]
    return ids, tokens, credentials


async def partner_token(client: aiohttp.ClientSession, credential: tuple[str, str]) -> str:
    """An access token for a partner (client id, secret) from the token endpoint of the
    server `client` talks to: at the start, and when one expires in a long catch-up."""
    client_id, secret = credential
    async with client.post(
        "/api/v1/auth/token",
        data={"grant_type": "client_credentials"},
        auth=aiohttp.BasicAuth(client_id, secret),
    ) as response:
        if response.status != 200:
            raise RuntimeError(f"benchmark partner token failed: {await response.text()}")
        return str((await response.json())["access_token"])


async def remove_partners(database_url: str) -> None:
    """The benchmark's partners and what they left (deliveries, their ids for records)."""
    connection = await asyncpg.connect(**asyncpg_connect_kwargs(database_url))
    try:
        async with connection.transaction():
            bench = f"SELECT id FROM partner WHERE name LIKE '{BENCH_PARTNER_PREFIX}%'"  # noqa: S608
            # The workloads' own events are gone by now (clean_up).
            for table in ("sync_delivered", "sync_external_id", "sync_webhook"):
                await connection.execute(
                    f"DELETE FROM {table} WHERE partner_id IN ({bench})"  # noqa: S608 (names from above)
                )
            await connection.execute(f"DELETE FROM partner WHERE id IN ({bench})")  # noqa: S608
    finally:
        await connection.close()
