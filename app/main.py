"""The application factory: routers, middleware, error handlers and lifespan."""

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import structlog
from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import configure_mappers
from swagger_ui_bundle import swagger_ui_path

from app.access.policy import PolicyEngine
from app.audit.http import open_journal
from app.audit.read_events import read_events_of, say_reads_unrecorded
from app.audit.router import router as audit_router
from app.cases.router import router as cases_router
from app.collective.router import router as collective_router
from app.core.config import Environment, Settings, get_settings
from app.core.crypto import audit_key_ring, data_key_ring, signing_key_ring
from app.core.db import create_engine, publish_pool_figures_periodically, session_factory
from app.core.errors import UnexpectedErrorMiddleware, install_error_handlers
from app.core.logging import configure_logging
from app.core.metrics import forget_this_worker, read_token
from app.core.middleware import (
    BodyLimitMiddleware,
    ConcurrencyLimitMiddleware,
    RequestContextMiddleware,
    SecurityHeadersMiddleware,
)
from app.core.openapi import install_contract
from app.core.queries import refuse_unknown_query_parameters
from app.custody.router import facilities_router
from app.custody.router import router as custody_router
from app.identity.credentials import Passwords
from app.identity.http import authenticate
from app.identity.kit import SecurityKit
from app.identity.live import LiveIdentities
from app.identity.oidc import OidcVerifier
from app.identity.roles import roles_needing_approval
from app.identity.router import (
    auth_router,
    partners_router,
    role_requests_router,
    users_router,
)
from app.identity.tokens import AccessTokens
from app.jobs.housekeeping import run_periodically
from app.merges.router import router as merges_router
from app.mirrors.router import router as mirrors_router
from app.ops.grants import refuse_unsafe_role
from app.ops.keys import check_sealed_values_open
from app.ops.metrics import SCRAPE_HOOKS
from app.ops.router import metrics_router
from app.ops.router import router as ops_router
from app.persons.router import duplicates_router as person_duplicates_router
from app.persons.router import matches_router as person_matches_router
from app.persons.router import router as persons_router
from app.recognition.router import criteria_router as recognition_criteria_router
from app.recognition.router import router as recognition_router
from app.reports.router import router as reports_router
from app.reports.schedules.router import router as report_schedules_router
from app.sources.router import router as sources_router
from app.sync.router import router as sync_router

log = structlog.get_logger(__name__)

API_PREFIX = "/api/v1"
DOCS_ASSETS = "/docs-assets"


def api_router() -> APIRouter:
    """Every business route hangs below one router that requires authentication; only
    sign-in and the token endpoints are outside it, each marked open explicitly."""
    router = APIRouter(prefix=API_PREFIX)
    router.include_router(auth_router)
    # Included one by one rather than through one more router: every level of nesting
    # costs FastAPI work on each request's route matching.
    for feature in (
        persons_router,
        person_matches_router,
        person_duplicates_router,
        merges_router,
        mirrors_router,
        sync_router,
        cases_router,
        collective_router,
        custody_router,
        facilities_router,
        recognition_router,
        recognition_criteria_router,
        sources_router,
        users_router,
        role_requests_router,
        partners_router,
        audit_router,
        # Before the reports' own routes: /reports/{report_id} would take /reports/schedules.
        report_schedules_router,
        reports_router,
    ):
        router.include_router(feature, dependencies=[Depends(authenticate)])
    return router


def security_kit(settings: Settings) -> SecurityKit:
    """Keys, hashing parameters, the external provider and the roles needing approval,
    read once at start-up; missing or malformed keys (KeyConfigurationError) or an unknown
    role (InvalidSetting) stop the start."""
    return SecurityKit(
        settings=settings,
        passwords=Passwords(settings),
        tokens=AccessTokens(settings, signing_key_ring(settings)),
        data_keys=data_key_ring(settings),
        audit_keys=audit_key_ring(settings),
        oidc=OidcVerifier(settings) if settings.oidc_issuer else None,
        roles_needing_approval=roles_needing_approval(settings.roles_needing_approval),
    )


async def _check_database(engine: AsyncEngine, settings: Settings, security: SecurityKit) -> None:
    """Refuse to start with data keys that cannot open the values stored
    (KeyConfigurationError), or in production as a role that can rewrite the audit trail
    (UnsafeDatabaseRole). A database that is not reachable (or not migrated) yet is
    checked by nobody: the server starts and answers 503 until it is."""
    try:
        await check_sealed_values_open(engine, security.data_keys)
        await refuse_unsafe_role(engine, production=settings.env is Environment.production)
    except (SQLAlchemyError, OSError) as error:
        log.warning("database_not_checked", error=type(error).__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_json)
    # Some rows are built without the ORM constructor; the mappers must exist first.
    configure_mappers()
    # Both refuse to start on broken policy files or missing production keys.
    policy = PolicyEngine()
    security = security_kit(settings)
    # An unreadable or short token file stops the start (InvalidSetting).
    metrics_token = read_token(settings.metrics_token_file)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.database_url is None:
            raise RuntimeError("DATABASE_URL is not set; start through `habeas serve`.")
        engine = create_engine(settings.database_url, settings)
        app.state.engine = engine
        app.state.session_factory = session_factory(engine)
        await _check_database(engine, settings, security)
        if settings.identity_cache:
            app.state.live_identities = LiveIdentities.for_database(
                settings.database_url, settings.connect_timeout_seconds
            )
            app.state.live_identities.start()
        app.state.read_events = read_events_of(app.state.session_factory, settings)
        if app.state.read_events is not None:
            app.state.read_events.start()
        if not settings.audit_reads:
            await say_reads_unrecorded(app.state.session_factory)
        background = []
        if settings.housekeeping_interval_seconds:
            background.append(
                asyncio.create_task(run_periodically(app.state.session_factory, settings))
            )
        if metrics_token is not None:
            background.append(asyncio.create_task(publish_pool_figures_periodically(engine)))
        # What start-up made (policies, schemas, mappers, caches) lives as long as the
        # process: frozen out of the collector's way, so that a full collection, frequent
        # under a page of hundreds of records, walks only what requests made (a feed page
        # took twice the time otherwise: docs/performance.md).
        _freeze_start_up()
        yield
        for task in background:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        if app.state.read_events is not None:
            await app.state.read_events.close()
        if app.state.live_identities is not None:
            await app.state.live_identities.close()
        if security.oidc is not None:
            await security.oidc.aclose()
        await engine.dispose()
        forget_this_worker()

    app = FastAPI(
        title="Habeas",
        version="1",
        summary="Case files of political prisoners",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # Before every route's own: a query it does not take is refused, never ignored.
        dependencies=[Depends(refuse_unknown_query_parameters)],
    )
    app.state.settings = settings
    app.state.read_events = None
    app.state.live_identities = None
    app.state.policy = policy
    app.state.security = security
    # Also apart, for the features that sign or seal without authenticating anyone.
    app.state.audit_keys = security.audit_keys
    app.state.data_keys = security.data_keys
    # Every request's unit of work carries an audit journal (app/core/db.py).
    app.state.open_journal = open_journal
    app.state.metrics_token = metrics_token
    app.state.scrape_hooks = list(SCRAPE_HOOKS)
    install_error_handlers(app)
    app.include_router(ops_router)
    if metrics_token is not None:
        app.include_router(metrics_router)
    app.include_router(api_router())
    _mount_offline_docs(app)
    install_contract(app, settings.max_page_size)

    # Added first, so innermost: the others wrap its 500s too.
    app.add_middleware(UnexpectedErrorMiddleware)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        read_timeout=settings.body_read_timeout_seconds,
        total_timeout=settings.body_total_timeout_seconds,
    )
    # A request beyond the limit costs its refusal, with the security headers and its id.
    app.add_middleware(ConcurrencyLimitMiddleware, limit=settings.max_concurrent_requests)
    app.add_middleware(SecurityHeadersMiddleware, docs_prefixes=("/docs", DOCS_ASSETS))
    app.add_middleware(RequestContextMiddleware, count_requests=metrics_token is not None)
    return app


_frozen = False
# The collector's first generation runs after this many allocations, not 700: a page of a
# partner's feed or a list makes tens of thousands of objects, nearly all freed by their
# reference counts, and each run walked them again (a person page of the feed took 97 ms
# of CPU, 81 with this; docs/performance.md). The older generations keep Python's own
# ratios (10, 10), so that garbage in cycles is still collected every few million
# allocations: raising them too gained nothing measurable.
GC_FIRST_GENERATION = 50_000
GC_OLDER_GENERATIONS = (10, 10)


def _freeze_start_up() -> None:
    """Once a process: a second app in the same process (tests) is not frozen with it, so
    that it can be freed."""
    global _frozen
    if not _frozen:
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_FIRST_GENERATION, *GC_OLDER_GENERATIONS)
        _frozen = True


def _mount_offline_docs(app: FastAPI) -> None:
    """Swagger UI from the bundled package: many users work offline or air-gapped."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Habeas API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )
