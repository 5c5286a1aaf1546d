"""Settings, read once from the environment (and `.env` in development)."""

from datetime import date
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class InvalidSetting(ValueError):
    """A setting that a feature reads at start-up is not valid: the server must not start.
    The message is one line that names the setting and the value."""


class ConfiguredReportSchedule(BaseModel):
    """A status report schedule set in the configuration (HABEAS_REPORT_SCHEDULES): the
    worker keeps a schedule of that name as given here (app/reports/schedules/)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=300)
    cadence: Literal["weekly", "monthly"]
    # ISO 3166-1 alpha-2; none: every jurisdiction
    jurisdiction: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    baseline: date = date(2020, 1, 1)
    # none: the report's default; the values are checked when the worker starts
    held_deprivation_types: list[str] | None = Field(default=None, min_length=1)
    enabled: bool = True


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
    # `habeas serve` migrates as the owner of the tables, then runs the API as a role that
    # owns nothing and cannot switch the audit trail's triggers off. On the embedded server
    # that role is `app_database_role`, created and granted at every start. With
    # DATABASE_URL, the API uses it as given (production's is already the application's
    # role), unless HABEAS_APP_DATABASE_URL is set too: then DATABASE_URL is the owner's,
    # and the API connects with HABEAS_APP_DATABASE_URL, whose role is granted at start.
    app_database_url: str | None = None
    app_database_role: str = "habeas_app"
    pool_size: int = Field(default=10, ge=1, le=200)
    pool_max_overflow: int = Field(default=10, ge=0, le=200)
    # How long a request waits for a pooled connection, and for a new one to open, before
    # it is answered 503 (the database is overloaded or away).
    pool_timeout_seconds: float = Field(default=10.0, gt=0)
    connect_timeout_seconds: float = Field(default=5.0, gt=0)

    # Reads' audit events (app/audit/read_events.py) wait at most this long in the process
    # and are then appended together: one lock of the chain, one insert, one commit for
    # all of them. 0 appends each in its request's own transaction.
    audit_read_batch_ms: int = Field(default=25, ge=0, le=50)
    # How many reads' events may wait at once; a read finding the queue full waits for
    # room (at most `pool_timeout_seconds`, then 503): never served unrecorded.
    audit_read_queue_limit: int = Field(default=10_000, ge=1)
    # For measuring what recording reads costs (scripts/bench) and nothing else: off, reads
    # are not recorded at all. The server says so in the trail when it starts that way.
    audit_reads: bool = True
    # Sessions and partners checked from memory while the process hears PostgreSQL's
    # notifications of their changes (app/identity/live.py); off, every request asks the
    # database.
    identity_cache: bool = True

    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # Connection limits (app/core/server.py, app/core/middleware.py): a client has this
    # long to send a request's headers, and each chunk of its body (and all of it in
    # `body_total_timeout_seconds`); an idle kept-alive connection is closed after
    # `keep_alive_seconds`; a process takes at most `max_concurrent_requests` requests at
    # once and answers 503 beyond.
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    body_read_timeout_seconds: float = Field(default=30.0, gt=0)
    body_total_timeout_seconds: float = Field(default=120.0, gt=0)
    keep_alive_seconds: int = Field(default=5, ge=1)
    max_concurrent_requests: int = Field(default=200, ge=1)
    default_page_size: int = Field(default=50, ge=1)
    max_page_size: int = Field(default=200, ge=1)
    idempotency_retention_hours: int = Field(default=24, ge=1)
    # The log of webhook deliveries (an endpoint's address, outcome and error) is for
    # finding out why an endpoint fails, not a record: kept so long.
    webhook_delivery_retention_days: int = Field(default=30, ge=1)
    # How often each API process purges expired records (app/jobs/housekeeping.py); 0: never.
    # `habeas worker` purges on its own schedule (below); where a worker runs, the API's
    # loop can be switched off (docker-compose.yml does), or kept: the deletes only repeat.
    housekeeping_interval_seconds: int = Field(default=600, ge=0)

    # `habeas worker` (app/jobs/): cron expressions (five fields, or six with seconds
    # last) of its scheduled jobs; an empty one switches that job off. The integrity job
    # verifies the whole audit chain, signs a checkpoint of its head and writes it to
    # `checkpoint_export_dir` (none: the checkpoint is only stored in the database).
    integrity_schedule: str = "*/15 * * * *"
    purge_schedule: str = "*/10 * * * *"
    checkpoint_export_dir: Path | None = None
    # Jobs that failed stay in the queue (status `failed`, counted by the job health
    # figures) for this long, then the purge job removes them.
    failed_job_retention_days: int = Field(default=7, ge=1)
    # Partners' webhooks (app/sync/webhooks.py): endpoints must be https and resolve to
    # public addresses, unless this allows plain http and private addresses (development,
    # a partner on the same private network).
    webhook_allow_private: bool = False
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    # Failed deliveries in a row after which an endpoint is disabled (and reported).
    webhook_max_failures: int = Field(default=8, ge=1)
    # A run of the webhooks job on a schedule too: what a worker that stopped in the
    # middle of a delivery left is taken up again.
    webhook_sweep_schedule: str = "*/5 * * * *"
    # Scheduled status reports (app/reports/schedules/): the job that makes every report
    # due runs on `report_job_schedule` (a cron expression; empty: never) and catches up
    # every period missed while no worker ran, at most `report_catch_up_limit` periods of a
    # schedule per run (the rest at the next). A period whose generation fails is tried
    # `report_attempts` times, `report_retry_seconds` apart and doubling, then recorded as
    # failed and tried again at the next run. `report_schedules` is a JSON list of
    # schedules kept in the configuration besides those coordinators make through the API,
    # e.g. [{"name": "weekly-BY", "cadence": "weekly", "jurisdiction": "BY"}].
    report_job_schedule: str = "7 * * * *"
    # The path basis reports read (app/reports/basis.py) is rebuilt on this schedule (a cron
    # expression; empty: never). A report builds anew only the case files changed since.
    report_basis_schedule: str = "41 2 * * *"
    # The scan of every person for others who may be the same (app/persons/duplicates.py)
    # runs on this schedule (a cron expression; empty: never); coordinators read its pairs.
    duplicate_scan_schedule: str = "17 3 * * *"
    # A case file counts as changed since the basis if anything of it was recorded up to
    # this long before the basis's moment (app/reports/basis.py says why).
    report_basis_margin_seconds: float = Field(default=600, ge=0, le=86_400)
    report_schedules: list[ConfiguredReportSchedule] = []
    report_catch_up_limit: int = Field(default=12, ge=1, le=1000)
    report_attempts: int = Field(default=3, ge=1, le=20)
    report_retry_seconds: float = Field(default=30.0, ge=0)

    # Status reports (docs/reports.md): a report asked "as known now" counts what had been
    # recorded this many seconds before, once the writes under way then have finished, so
    # that asking again "as known at" its knowledge time gives the same figures.
    report_settle_seconds: float = Field(default=5.0, ge=0, le=60)

    # Addresses of reverse proxies whose X-Forwarded-For is believed (comma-separated), so
    # that sign-in throttling sees each client's own address behind a TLS proxy.
    trusted_proxies: str = ""

    log_level: str = "INFO"
    log_json: bool = False

    # /metrics (Prometheus) is served only when this names a file holding the bearer token
    # a scrape must present (one word, at least 32 characters); read at start-up. Without
    # it, /metrics answers 404 like any unknown path.
    metrics_token_file: Path | None = None

    # Keys. In development they are generated under `data_dir/keys` on first use; in
    # production they must be given (inline JSON or a file), or the server refuses to start.
    jwt_keys: str | None = None
    jwt_key_file: Path | None = None
    data_keys: str | None = None
    data_key_file: Path | None = None
    # Signs audit checkpoints and keys the fingerprints of confidential values in the trail.
    audit_keys: str | None = None
    audit_key_file: Path | None = None
    # Encrypts backups (`habeas backup create`). Kept apart from the dumps and from the
    # other keys: whoever holds a dump and the data keys still cannot read a backup.
    backup_keys: str | None = None
    backup_key_file: Path | None = None

    # Tokens
    token_issuer: str = "habeas"  # noqa: S105 (a name, not a secret)
    token_audience: str = "habeas-api"  # noqa: S105 (a name, not a secret)
    access_token_minutes: int = Field(default=10, ge=1, le=15)
    refresh_token_days: int = Field(default=14, ge=1, le=90)
    session_max_days: int = Field(default=30, ge=1, le=365)
    partner_token_minutes: int = Field(default=10, ge=1, le=15)

    # How long an enrolment code (a new account's, or a reset's) can be redeemed.
    enrolment_code_hours: int = Field(default=72, ge=1, le=720)
    # Roles held only once a second person approves them, on a new account, a role change
    # or after a reset, besides those that always are (admin and every role that reads
    # case content; app/identity/roles.py): comma-separated, e.g. "auditor". Checked at
    # start-up.
    roles_needing_approval: str = ""

    # Passwords (argon2id)
    password_time_cost: int = Field(default=3, ge=1)
    password_memory_kib: int = Field(default=65_536, ge=8)
    password_parallelism: int = Field(default=1, ge=1)

    # Throttling of failed authentication (OWASP Authentication Cheat Sheet). Failures are
    # counted within a window, three ways: per account and client address together (tight:
    # one place guessing one password), per address (broader: an office shares one) and
    # per account from every address (high, blocking only briefly, and each failure past
    # it blocks again: guessing spread over many addresses stays bounded). The
    # account-wide block does not hold back an address the account signed in from within
    # `login_known_address_days`, so that failures from elsewhere, however many, cannot
    # lock the owner out. IPv6 addresses count by their /64 (one host's share). The
    # partner token endpoint counts the same way, the client id in place of the account,
    # without the account-wide count (a client secret or key cannot be guessed; the limit
    # is on hashing work).
    login_failure_window_seconds: int = Field(default=900, ge=1)
    login_max_failures_per_account_and_address: int = Field(default=5, ge=1)
    login_max_failures_per_address: int = Field(default=20, ge=1)
    login_block_seconds: int = Field(default=300, ge=1)
    login_max_failures_per_account: int = Field(default=50, ge=1)
    login_account_block_seconds: int = Field(default=60, ge=1)
    login_known_address_days: int = Field(default=30, ge=1, le=365)

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
