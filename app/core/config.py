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

    log_level: str = "INFO"
    log_json: bool = False


@lru_cache
def get_settings() -> Settings:
    return Settings()
