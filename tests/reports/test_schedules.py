"""Report schedules: the periods they cover, who keeps and reads them through the API, and
the job `habeas worker` runs (called directly here, on the real database): each due period
made once, a failed one recorded with its attempts and error and tried again, a period
missed while no worker ran caught up, the configuration's schedules kept."""

import json
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from itertools import islice, pairwise
from typing import Any

import asyncpg
import httpx
import pytest
import structlog
from fastapi import FastAPI

from app.access.principal import Role
from app.core.clock import today
from app.core.config import ConfiguredReportSchedule, InvalidSetting, Settings
from app.jobs import service as jobs_service
from app.jobs import worker
from app.reports import service as reports_service
from app.reports.schedules import service
from app.reports.schedules.periods import (
    Cadence,
    Period,
    last_complete_period,
    period_ending,
    periods_between,
)
from tests.audit.trail import events_after, head_seq
from tests.auth import SignedIn
from tests.custody.custody import partner_client
from tests.factories import API

SignIn = Callable[..., Awaitable[SignedIn]]
SCHEDULES = f"{API}/reports/schedules"
UNKNOWN_ID = f"{'0' * 8}-0000-7000-8000-{'0' * 12}"


def weekly_body(**overrides: Any) -> dict[str, Any]:
    return {"name": "Weekly BY", "cadence": "weekly", "jurisdiction": "BY", **overrides}


def job_settings(app: FastAPI, **overrides: Any) -> Settings:
    """The app's settings, with no pause between attempts (the test would only wait)."""
    settings: Settings = app.state.settings
    return settings.model_copy(update={"report_retry_seconds": 0.0, **overrides})


async def make_due_reports(app: FastAPI, settings: Settings) -> list[service.Outcome]:
    return await service.make_due_reports(
        app.state.session_factory, settings, app.state.security.audit_keys
    )


async def runs_of(db: asyncpg.Connection, schedule_id: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT * FROM report_schedule_run WHERE schedule_id = $1 ORDER BY as_of", schedule_id
    )


# The periods -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("run_date", "expected"),
    [
        # a Monday: the week just over
        (date(2026, 11, 30), Period(date(2026, 11, 23), date(2026, 11, 29))),
        # a Sunday: its own week is not over, so the one before
        (date(2026, 11, 29), Period(date(2026, 11, 16), date(2026, 11, 22))),
        # across the new year (ISO week 1 of 2027 starts on 4 January)
        (date(2027, 1, 5), Period(date(2026, 12, 28), date(2027, 1, 3))),
    ],
)
def test_a_weekly_report_covers_the_iso_week_before_the_run(
    run_date: date, expected: Period
) -> None:
    period = last_complete_period(Cadence.weekly, run_date)
    assert period == expected
    assert period.period_from.isoweekday() == 1 and period.as_of.isoweekday() == 7
    assert period.as_of == period.period_to


@pytest.mark.parametrize(
    ("run_date", "expected"),
    [
        (date(2026, 10, 1), Period(date(2026, 9, 1), date(2026, 9, 30))),
        (date(2026, 10, 31), Period(date(2026, 9, 1), date(2026, 9, 30))),
        (date(2024, 3, 15), Period(date(2024, 2, 1), date(2024, 2, 29))),  # a leap year
        (date(2025, 3, 1), Period(date(2025, 2, 1), date(2025, 2, 28))),
        (date(2027, 1, 1), Period(date(2026, 12, 1), date(2026, 12, 31))),
    ],
)
def test_a_monthly_report_covers_the_calendar_month_before_the_run(
    run_date: date, expected: Period
) -> None:
    period = last_complete_period(Cadence.monthly, run_date)
    assert period == expected and period.as_of == expected.period_to


def test_the_periods_between_two_follow_each_other_without_gap() -> None:
    for cadence, first_day, count in (
        (Cadence.weekly, date(2026, 1, 7), 60),
        (Cadence.monthly, date(2023, 11, 20), 40),
    ):
        first = period_ending(cadence, first_day)
        last = period_ending(cadence, date(2100, 1, 1))
        periods = list(islice(periods_between(cadence, first, last), count))
        for earlier, later in pairwise(periods):
            assert later.period_from == earlier.period_to + timedelta(days=1)
            if cadence is Cadence.weekly:
                assert (later.period_to - later.period_from).days == 6
            else:
                assert later.period_from.day == 1
                assert (later.period_to + timedelta(days=1)).day == 1
    one = period_ending(Cadence.monthly, date(2026, 2, 10))
    assert list(periods_between(Cadence.monthly, one, one)) == [one]


# The API ---------------------------------------------------------------------------------


async def test_a_coordinator_makes_and_changes_a_schedule_with_the_version_read(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    seq = await head_seq(db)
    made = await client.post(SCHEDULES, json=weekly_body(held_deprivation_types=["imprisonment"]))
    assert made.status_code == 201, made.text
    schedule = made.json()
    path = f"{SCHEDULES}/{schedule['id']}"
    assert made.headers["etag"] == '"1"' and made.headers["location"] == path
    assert schedule["origin"] == "api" and schedule["baseline"] == "2020-01-01"
    assert schedule["held_deprivation_types"] == ["imprisonment"] and schedule["enabled"]
    read = await client.get(path)
    assert read.status_code == 200 and read.json() == schedule
    listed = await client.get(SCHEDULES)
    assert [item["id"] for item in listed.json()["items"]] == [schedule["id"]]

    change = {"enabled": False, "jurisdiction": None}
    assert (await client.patch(path, json=change)).status_code == 428
    stale = await client.patch(path, json=change, headers={"If-Match": '"2"'})
    assert stale.status_code == 412, stale.text
    assert stale.headers["content-type"] == "application/problem+json"
    changed = await client.patch(path, json=change, headers={"If-Match": '"1"'})
    assert changed.status_code == 200, changed.text
    assert changed.headers["etag"] == '"2"'
    assert changed.json()["enabled"] is False and changed.json()["jurisdiction"] is None

    actions = [event["action"] for event in await events_after(db, seq)]
    assert actions.count("report_schedule.create") == 1
    assert actions.count("report_schedule.update") == 1


async def test_unknown_fields_unknown_values_and_taken_names_are_refused(
    client: httpx.AsyncClient,
) -> None:
    for body in (
        weekly_body(colour="grey"),
        weekly_body(cadence="daily"),
        weekly_body(held_deprivation_types=["exile"]),
        weekly_body(jurisdiction="Belarus"),
        {"cadence": "weekly"},
    ):
        refused = await client.post(SCHEDULES, json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
    made = (await client.post(SCHEDULES, json=weekly_body())).json()
    path = f"{SCHEDULES}/{made['id']}"
    for change in ({"colour": "grey"}, {"cadence": "monthly"}, {"name": None}, {"enabled": None}):
        refused = await client.patch(path, json=change, headers={"If-Match": '"1"'})
        assert refused.status_code == 422, (change, refused.text)
    again = await client.post(SCHEDULES, json=weekly_body(cadence="monthly"))
    assert again.status_code == 409, again.text
    other = (await client.post(SCHEDULES, json=weekly_body(name="Monthly"))).json()
    renamed = await client.patch(
        f"{SCHEDULES}/{other['id']}", json={"name": "Weekly BY"}, headers={"If-Match": '"1"'}
    )
    assert renamed.status_code == 409, renamed.text
    assert (await client.get(f"{SCHEDULES}/{UNKNOWN_ID}")).status_code == 404
    assert (await client.get(f"{SCHEDULES}/{UNKNOWN_ID}/runs")).status_code == 404
    missing = await client.patch(
        f"{SCHEDULES}/{UNKNOWN_ID}", json={"enabled": False}, headers={"If-Match": '"1"'}
    )
    assert missing.status_code == 404


async def test_coordinators_keep_schedules_analysts_and_admins_read_the_rest_are_refused(
    app: FastAPI, sign_in_as: SignIn
) -> None:
    coordinator = (await sign_in_as(Role.coordinator)).client
    schedule = (await coordinator.post(SCHEDULES, json=weekly_body())).json()
    path = f"{SCHEDULES}/{schedule['id']}"
    for role in (Role.analyst, Role.admin):
        reader = (await sign_in_as(role)).client
        assert (await reader.get(SCHEDULES)).status_code == 200, role
        assert (await reader.get(path)).status_code == 200, role
        assert (await reader.get(f"{path}/runs")).status_code == 200, role
        assert (await reader.post(SCHEDULES, json=weekly_body(name="x"))).status_code == 403
        patched = await reader.patch(path, json={"enabled": False}, headers={"If-Match": '"1"'})
        assert patched.status_code == 403, role
    for role in (Role.caseworker, Role.auditor):
        refused = (await sign_in_as(role)).client
        assert (await refused.get(SCHEDULES)).status_code == 403, role
        assert (await refused.post(SCHEDULES, json=weekly_body(name="x"))).status_code == 403
        # A schedule they may not read is not there for them.
        assert (await refused.get(path)).status_code == 404, role
        assert (await refused.get(f"{path}/runs")).status_code == 404, role
        patched = await refused.patch(path, json={"enabled": False}, headers={"If-Match": '"1"'})
        assert patched.status_code == 404, role
    partner = await partner_client(app, "public")
    try:
        assert (await partner.get(SCHEDULES)).status_code == 403
        assert (await partner.get(path)).status_code == 404
        assert (await partner.post(SCHEDULES, json=weekly_body(name="x"))).status_code == 403
    finally:
        await partner.aclose()
    unchanged = await coordinator.get(path)
    assert unchanged.json() == schedule


# The job ---------------------------------------------------------------------------------


async def test_the_job_makes_each_due_period_once_and_catches_up_what_was_missed(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    schedule = (await client.post(SCHEDULES, json=weekly_body())).json()
    paused = (await client.post(SCHEDULES, json=weekly_body(name="Paused", enabled=False))).json()
    settings = job_settings(app)
    due = last_complete_period(Cadence.weekly, today())

    (outcome,) = await make_due_reports(app, settings)

    assert outcome.period == due and outcome.snapshot_id is not None
    (run,) = await runs_of(db, schedule["id"])
    assert (run["status"], run["attempts"], run["error"]) == ("succeeded", 1, None)
    assert (run["period_from"], run["period_to"], run["as_of"]) == (
        due.period_from,
        due.period_to,
        due.as_of,
    )
    assert run["snapshot_id"] == outcome.snapshot_id and run["finished_at"] is not None
    snapshot = await db.fetchrow("SELECT * FROM report_snapshot WHERE id = $1", run["snapshot_id"])
    assert snapshot is not None and snapshot["as_of"] == due.as_of
    parameters = json.loads(snapshot["parameters"])
    assert parameters["period"] == {
        "from": due.period_from.isoformat(),
        "to": due.period_to.isoformat(),
    }
    assert parameters["jurisdiction"] == "BY" and snapshot["generated_by"] is None
    generations = await db.fetch(
        "SELECT actor_type FROM audit_event WHERE action = 'report.generate' AND resource_id = $1",
        run["snapshot_id"],
    )
    assert [row["actor_type"] for row in generations] == ["system"]
    assert await runs_of(db, paused["id"]) == []
    # Made once: the next run finds nothing due.
    assert await make_due_reports(app, settings) == []
    assert len(await runs_of(db, schedule["id"])) == 1

    # The worker was away for three more weeks (the schedule is older than it looked).
    await db.execute(
        "UPDATE report_schedule SET created_at = created_at - interval '21 days' WHERE id = $1",
        schedule["id"],
    )
    caught_up = await make_due_reports(app, job_settings(app, report_catch_up_limit=2))
    assert [o.period.as_of for o in caught_up] == [
        due.as_of - timedelta(days=21),
        due.as_of - timedelta(days=14),
    ]
    rest = await make_due_reports(app, settings)
    assert [o.period.as_of for o in rest] == [due.as_of - timedelta(days=7)]
    runs = await runs_of(db, schedule["id"])
    assert [r["as_of"] for r in runs] == [due.as_of - timedelta(days=7 * n) for n in (3, 2, 1, 0)]
    assert {r["status"] for r in runs} == {"succeeded"}
    assert len({r["snapshot_id"] for r in runs}) == 4
    assert await db.fetchval("SELECT count(*) FROM report_snapshot") == 4

    listed = await client.get(f"{SCHEDULES}/{schedule['id']}/runs", params={"limit": 3})
    assert listed.status_code == 200, listed.text
    page = listed.json()["items"] + (await client.get(listed.json()["next"])).json()["items"]
    assert sorted(item["as_of"] for item in page) == [str(r["as_of"]) for r in runs]


async def test_a_failed_generation_is_recorded_reported_and_tried_again(
    app: FastAPI,
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    schedule = (await client.post(SCHEDULES, json=weekly_body())).json()
    settings = job_settings(app, report_attempts=2)
    real_generation = reports_service.generate
    calls: list[date] = []

    async def failing(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["data"].as_of)
        raise RuntimeError("the as-of engine is away")

    # Only the failure is injected; everything else (the runs, the retries) is real.
    monkeypatch.setattr(reports_service, "generate", failing)
    with structlog.testing.capture_logs() as logs, pytest.raises(service.ReportsFailed):
        await make_due_reports(app, settings)

    assert len(calls) == 2  # both attempts
    (run,) = await runs_of(db, schedule["id"])
    assert (run["status"], run["attempts"], run["snapshot_id"]) == ("failed", 2, None)
    assert run["error"] == "RuntimeError: the as-of engine is away"
    errors = [entry for entry in logs if entry["log_level"] == "error"]
    assert [entry["event"] for entry in errors] == ["status_report_failed"] * 2
    assert errors[-1]["schedule_id"] == schedule["id"] and errors[-1]["attempt"] == 2
    async with app.state.session_factory() as session:
        health = await jobs_service.job_health(session)
    assert health.report_runs == {"running": 0, "succeeded": 0, "failed": 1}
    runs = (await client.get(f"{SCHEDULES}/{schedule['id']}/runs")).json()["items"]
    assert [(r["status"], r["attempts"], r["error"]) for r in runs] == [
        ("failed", 2, "RuntimeError: the as-of engine is away")
    ]

    # The next run tries the same period again; this time it is made.
    monkeypatch.setattr(reports_service, "generate", real_generation)
    (outcome,) = await make_due_reports(app, settings)
    (run,) = await runs_of(db, schedule["id"])
    assert outcome.period.as_of == run["as_of"] == calls[0]
    assert (run["status"], run["attempts"]) == ("succeeded", 3)
    assert run["snapshot_id"] == outcome.snapshot_id is not None
    async with app.state.session_factory() as session:
        health = await jobs_service.job_health(session)
    assert health.report_runs["failed"] == 0 and health.report_runs["succeeded"] == 1


async def test_the_configuration_s_schedules_are_kept_by_the_job_and_read_only_in_the_api(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    configured = ConfiguredReportSchedule(name="Monthly BY", cadence="monthly", jurisdiction="BY")
    settings = job_settings(app, report_schedules=[configured])
    seq = await head_seq(db)

    (outcome,) = await make_due_reports(app, settings)

    assert outcome.period == last_complete_period(Cadence.monthly, today())
    (listed,) = (await client.get(SCHEDULES)).json()["items"]
    assert (listed["name"], listed["origin"], listed["cadence"]) == (
        "Monthly BY",
        "configuration",
        "monthly",
    )
    assert listed["created_by"] is None and listed["id"] == str(outcome.schedule_id)
    refused = await client.patch(
        f"{SCHEDULES}/{listed['id']}", json={"enabled": False}, headers={"If-Match": '"1"'}
    )
    assert refused.status_code == 409, refused.text
    configure_events = [
        event
        for event in await events_after(db, seq)
        if event["action"] == "report_schedule.configure"
    ]
    assert len(configure_events) == 1 and configure_events[0]["actor_type"] == "system"

    # Changed in the configuration: changed; no longer configured: disabled, runs kept.
    changed = configured.model_copy(update={"jurisdiction": None})
    assert await make_due_reports(app, job_settings(app, report_schedules=[changed])) == []
    read = (await client.get(f"{SCHEDULES}/{listed['id']}")).json()
    assert read["jurisdiction"] is None and read["version"] == 2
    assert await make_due_reports(app, job_settings(app, report_schedules=[])) == []
    read = (await client.get(f"{SCHEDULES}/{listed['id']}")).json()
    assert read["enabled"] is False and read["version"] == 3
    assert len(await runs_of(db, listed["id"])) == 1


def test_the_worker_schedules_the_job_and_refuses_a_configuration_it_cannot_keep(
    app: FastAPI,
) -> None:
    settings = job_settings(app)
    assert worker.schedules(settings)[jobs_service.REPORTS] == settings.report_job_schedule
    assert jobs_service.REPORTS not in worker.schedules(
        settings.model_copy(update={"report_job_schedule": ""})
    )
    weekly = ConfiguredReportSchedule(name="Weekly", cadence="weekly")
    exiled = weekly.model_copy(update={"held_deprivation_types": ["exile"]})
    for schedules, named in (([weekly, weekly], "more than once"), ([exiled], "'exile'")):
        with pytest.raises(InvalidSetting, match=named):
            worker.schedules(settings.model_copy(update={"report_schedules": schedules}))
    with pytest.raises(InvalidSetting, match="HABEAS_REPORT_JOB_SCHEDULE"):
        worker.schedules(settings.model_copy(update={"report_job_schedule": "hourly"}))
