"""Settings, read once from the environment (and `.env` in development)."""

from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HABEAS_", env_file=".env", extra="ignore", populate_by_name=True
    )

    env: Environment = Environment.development
    # DATABASE_URL is the conventional name; when it is unset, Habeas runs on an embedded
    # PostgreSQL under `data_dir`.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "HABEAS_DATABASE_URL")
    )
    data_dir: Path = Path(".data")
    database_name: str = "habeas"
    pool_size: int = Field(default=10, ge=1, le=200)
    pool_max_overflow: int = Field(default=10, ge=0, le=200)

    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    default_page_size: int = Field(default=50, ge=1)
    max_page_size: int = Field(default=200, ge=1)
    idempotency_retention_hours: int = Field(default=24, ge=1)

    # Addresses of reverse proxies whose X-Forwarded-For is believed (comma-separated), so
    # that sign-in throttling sees each client's own address behind a TLS proxy.
    trusted_proxies: str = ""

    log_level: str = "INFO"
    log_json: bool = False

    # Keys. In development they are generated under `data_dir/keys` on first use; in
    # production they must be given (inline JSON or a file), or the server refuses to start.
    jwt_keys: str | None = None
    jwt_key_file: Path | None = None
    data_keys: str | None = None
    data_key_file: Path | None = None
    # Signs audit checkpoints and keys the fingerprints of confidential values in the trail.
    audit_keys: str | None = None
    audit_key_file: Path | None = None

    # Tokens
    token_issuer: str = "habeas"  # noqa: S105 (a name, not a secret)
    token_audience: str = "habeas-api"  # noqa: S105 (a name, not a secret)
    access_token_minutes: int = Field(default=10, ge=1, le=15)
    refresh_token_days: int = Field(default=14, ge=1, le=90)
    session_max_days: int = Field(default=30, ge=1, le=365)
    partner_token_minutes: int = Field(default=10, ge=1, le=15)

    # Passwords (argon2id) and sign-in throttling
    password_time_cost: int = Field(default=3, ge=1)
    password_memory_kib: int = Field(default=65_536, ge=8)
    password_parallelism: int = Field(default=1, ge=1)
    login_max_failures: int = Field(default=5, ge=1)
    login_failure_window_seconds: int = Field(default=900, ge=1)
    login_block_seconds: int = Field(default=300, ge=1)

    # An external OpenID Connect provider whose access tokens are accepted as well.
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_role_claim: str = "roles"
    # Provider role or group name -> Habeas role, e.g. {"hr-coordinators": "coordinator"}.
    oidc_role_map: dict[str, str] = {}
    oidc_algorithms: list[str] = ["RS256", "ES256", "PS256"]
    # Providers that do not mark access tokens with `typ: at+jwt` can relax this; ID
    # tokens are still refused by their claims.
    oidc_require_at_jwt: bool = True
    oidc_jwks_min_refresh_seconds: int = Field(default=60, ge=0)

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"


@lru_cache
def get_settings() -> Settings:
    return Settings()
