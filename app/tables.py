"""Imports every table module so that the metadata is complete (Alembic, tests)."""

from app.audit import models as audit_models
from app.cases import models as cases_models
from app.collective import models as collective_models
from app.custody import models as custody_models
from app.idempotency import models as idempotency_models
from app.identity import models as identity_models
from app.jobs import models as jobs_models
from app.merges import models as merges_models
from app.mirrors import models as mirrors_models
from app.persons import models as persons_models
from app.recognition import models as recognition_models
from app.reports import models as reports_models
from app.reports.schedules import models as report_schedule_models
from app.sources import models as sources_models
from app.sync import models as sync_models

TABLE_MODULES = (
    audit_models,
    cases_models,
    collective_models,
    custody_models,
    identity_models,
    idempotency_models,
    jobs_models,
    merges_models,
    mirrors_models,
    persons_models,
    recognition_models,
    reports_models,
    report_schedule_models,
    sources_models,
    sync_models,
)
