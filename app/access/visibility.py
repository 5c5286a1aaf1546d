"""Who may see which record: the one place that says so.

For every kind of record this module gives the two forms of one rule, side by side:

- the **facts** the Cedar policies (policies/*.cedar) decide on, for one record or a whole
  page of them, each fetched with one query whatever the number of records; the caller's
  `Caller.clearance` / `Caller.may` then asks the policies;
- the **SQL predicate** that lists use, so that a page holds only what the caller may read.

tests/access proves that the two agree (a record is listed exactly when reading it alone is
allowed) and the authorization matrix proves the decisions. Features ask this module; none
of them states a visibility rule of its own.

The rules (DESIGN §4): a coordinator sees everything; a caseworker or analyst sees normal
case files and the persons who have no high-confidentiality one, and a caseworker also what
they are assigned to (or documented, until a high case file closes the person); a partner
sees what its sharing agreement shares (case file by case file, a person when one of their
case files is shared), never anything high. A person with a
high-confidentiality case file is as closed as that case file: their other case files
would otherwise show them.
"""

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, false, func, or_, true
from sqlalchemy import case as case_when
from sqlalchemy.orm import Mapped, aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.access.policy import Resource
from app.access.principal import Principal, Role, SharingAgreement
from app.cases.models import CaseFile, Confidentiality
from app.core.db import driver_connection
from app.persons.models import Person
from app.recognition.criteria import RecognitionStatus

# What a partner's `recognised_only` agreement requires of a case file: a recognition
# decision covering it (not one about another case file of its person).
RECOGNISED = RecognitionStatus.political_prisoner


# Publication ----------------------------------------------------------------------------


# SQL: whether the person row aliased `p` may be named in what the organisation publishes
# (status reports, the public list): the family consented, and none of their case files is
# high-confidentiality (such a person is as closed as that case file).
SQL_PUBLICLY_NAMEABLE = (
    "(p.publish_consent AND NOT EXISTS (SELECT 1 FROM case_file high "
    "WHERE high.person_id = p.id AND high.confidentiality = 'high'))"
)


# Case files -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonFacts:
    """What a case file's access depends on beyond the case file itself: its person."""

    # one of the person's case files is high-confidentiality
    closed: bool


NO_PERSON = PersonFacts(closed=False)


def person_closed_sql(person_id: str) -> str:
    """`PersonFacts.closed` as SQL on a person's id, for a query that reads a case file
    together with what its access needs (one round trip instead of two)."""
    # A column of ours, never a value.
    condition = f"high.person_id = {person_id} AND high.confidentiality = 'high'"
    return f"EXISTS (SELECT 1 FROM case_file high WHERE {condition})"  # noqa: S608


# On the case read's hot path, so straight on the driver (docs/performance.md).
SQL_PERSON_FACTS = f"""
SELECT p.id, {person_closed_sql("p.id")} AS closed
FROM person p
WHERE p.id = ANY($1::uuid[])
"""  # noqa: S608 (no value in it)


async def person_facts(
    session: AsyncSession, person_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, PersonFacts]:
    """For each person, the facts their case files' access needs: one query for all."""
    if not person_ids:
        return {}
    driver = await driver_connection(session)
    rows = await driver.fetch(SQL_PERSON_FACTS, list(person_ids))
    return {row["id"]: PersonFacts(row["closed"]) for row in rows}


def agreement_covers(agreement: SharingAgreement, case: CaseFile, *, closed: bool) -> bool:
    """Whether a partner's sharing agreement covers a case file (`closed`: the case file or
    another of its person's is high-confidentiality). With `recognised_only`, the case file
    itself must be recognised: a person recognised for one prosecution is not shared for a
    later one until a decision covers it. In SQL: `readable_cases`."""
    if closed:
        return False
    if case.id in agreement.case_file_ids:
        return True
    return (
        agreement.jurisdiction is not None
        and case.jurisdiction == agreement.jurisdiction
        and (case.recognition_status == RECOGNISED or not agreement.recognised_only)
    )


def case_resource(principal: Principal, case: CaseFile, person: PersonFacts) -> Resource:
    """What the policies know of one case file, given its person's facts."""
    closed = case.confidentiality != Confidentiality.normal or person.closed
    agreement = principal.agreement
    return Resource(
        "CaseFile",
        confidentiality=Confidentiality.high if closed else Confidentiality.normal,
        assigned_to_caller=not principal.is_partner and principal.id in case.assigned_caseworkers,
        shared_with_caller=agreement is not None
        and agreement_covers(agreement, case, closed=closed),
    )


async def case_resources(
    session: AsyncSession, principal: Principal, cases: Sequence[CaseFile]
) -> list[Resource]:
    """What the policies know of each case file, in order, with one query for the page."""
    facts = await person_facts(session, list({case.person_id for case in cases}))
    return [case_resource(principal, case, facts.get(case.person_id, NO_PERSON)) for case in cases]


def _has_high_case(person_id: Mapped[uuid.UUID]) -> ColumnElement[bool]:
    """Whether the person has a high-confidentiality case file, asked of each row (an index
    probe on ix_case_file_high_person_id). As `person_id NOT IN (every such person)` the
    whole set was read again by every query, and rebuilt for each row where the check sat
    in a subquery run per row: 35 ms a query at 1M persons, seconds in some plans
    (docs/performance.md)."""
    high = aliased(CaseFile)
    return (
        select(high.id)
        .where(col(high.person_id) == person_id, col(high.confidentiality) == Confidentiality.high)
        # Whatever the enclosing query reads, the probe reads its own alias.
        .correlate_except(high)
        .exists()
    )


def readable_cases(principal: Principal) -> ColumnElement[bool]:
    """The case files a principal may read (`case.read`), as SQL on `case_file`."""
    # Normal, and not the case file of a person who has a high-confidentiality one.
    normal = and_(
        col(CaseFile.confidentiality) == Confidentiality.normal,
        ~_has_high_case(col(CaseFile.person_id)),
    )
    agreement = principal.agreement
    if agreement is not None:
        if "sync:read" not in principal.scopes:
            return false()
        by_rule = (
            and_(
                col(CaseFile.jurisdiction) == agreement.jurisdiction,
                col(CaseFile.recognition_status) == RECOGNISED
                if agreement.recognised_only
                else true(),
            )
            if agreement.jurisdiction is not None
            else false()
        )
        listed = (
            col(CaseFile.id).in_(list(agreement.case_file_ids))
            if agreement.case_file_ids
            else false()
        )
        return and_(normal, or_(listed, by_rule))
    if principal.role is Role.coordinator:
        return true()
    if principal.role is Role.caseworker:
        return or_(normal, col(CaseFile.assigned_caseworkers).any_() == principal.id)
    if principal.role is Role.analyst:
        return normal
    return false()


# Persons --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonLinks:
    """How a caller is linked to a person through the person's case files."""

    # assigned to one of them (to one of the high ones, when there are any)
    assigned: bool
    # one of them is shared with the caller (a partner)
    shared: bool
    # one of them is high-confidentiality
    closed: bool


NO_CASE_FILES = PersonLinks(assigned=False, shared=False, closed=False)
# A person a partner's batch makes: seen by the partner through the case file the same
# batch gives them, which the batch checks its agreement shares before it commits
# (app/sync/push.py).
SHARED_BY_A_CASE_FILE_TO_COME = PersonLinks(assigned=False, shared=True, closed=False)


async def _person_links(
    session: AsyncSession, principal: Principal, person_ids: list[uuid.UUID]
) -> dict[uuid.UUID, PersonLinks]:
    is_high = col(CaseFile.confidentiality) == Confidentiality.high
    is_assigned = col(CaseFile.assigned_caseworkers).any_() == principal.id
    assigned = (
        case_when(
            (func.bool_or(is_high), func.bool_or(and_(is_high, is_assigned))),
            else_=func.bool_or(is_assigned),
        )
        if not principal.is_partner
        else false()
    )
    shared = func.bool_or(readable_cases(principal)) if principal.is_partner else false()
    stmt = (
        select(CaseFile.person_id, assigned, shared, func.bool_or(is_high))
        .where(col(CaseFile.person_id).in_(person_ids))
        .group_by(col(CaseFile.person_id))
    )
    return {
        row[0]: PersonLinks(bool(row[1]), bool(row[2]), bool(row[3]))
        for row in await session.exec(stmt)
    }


def person_resource(
    principal: Principal, *, recorded_by: uuid.UUID | None, links: PersonLinks
) -> Resource:
    """What the policies know of one person."""
    return Resource(
        "Person",
        confidentiality=Confidentiality.high if links.closed else Confidentiality.normal,
        # Who recorded a person is in charge of them until a high-confidentiality case
        # file closes them: then only that case file's caseworkers are (DESIGN §4).
        assigned_to_caller=not principal.is_partner
        and (links.assigned or (recorded_by == principal.id and not links.closed)),
        shared_with_caller=principal.is_partner and links.shared,
    )


async def person_resources(
    session: AsyncSession,
    principal: Principal,
    recorded_by: Mapping[uuid.UUID, uuid.UUID | None],
) -> dict[uuid.UUID, Resource]:
    """What the policies know of each person (person id -> who documented them), with one
    query for the page. The query runs for an id that names no person too, so that a
    hidden person takes as long to refuse as a missing one."""
    if not recorded_by:
        return {}
    links = await _person_links(session, principal, list(recorded_by))
    return {
        person_id: person_resource(
            principal, recorded_by=recorder, links=links.get(person_id, NO_CASE_FILES)
        )
        for person_id, recorder in recorded_by.items()
    }


async def merged_person_resource(
    session: AsyncSession, principal: Principal, merged_into: uuid.UUID
) -> Resource:
    """What the policies know of a person merged into another (app/merges): that one's,
    so that the merged record is seen exactly when the one holding it is, and a caller
    who may not see that one never learns of the merge."""
    recorder = (
        await session.exec(select(Person.recorded_by).where(col(Person.id) == merged_into))
    ).first()
    resources = await person_resources(session, principal, {merged_into: recorder})
    return resources[merged_into]


def readable_persons(principal: Principal) -> ColumnElement[bool]:
    """The persons a principal may read (`person.read`) and find in lists, as SQL on
    `person`. A person merged into another is none of them: they are read only as a
    redirect to that one (app/persons/service.py, `get`)."""
    return and_(col(Person.merged_into).is_(None), _readable_persons(principal))


def _readable_persons(principal: Principal) -> ColumnElement[bool]:
    closed = _has_high_case(col(Person.id))
    if principal.is_partner:
        # Asked of each person, over their own case files (an index probe each): written
        # as `id IN (the persons of every shared case file)`, each query built that whole
        # set, and a page deep in a partner's feed walked it from its start (1.2 s a page
        # at 1M persons, 40 ms at 100k; a few ms now). An aggregate keeps the planner
        # from turning it back into a join over that set.
        shared = (
            select(func.bool_or(readable_cases(principal)))
            .where(col(CaseFile.person_id) == col(Person.id))
            # Only the person comes from the enclosing query, even one that reads
            # case_file too: the person's case files are this subquery's own.
            .correlate(Person)
            .scalar_subquery()
        )
        return and_(shared.is_(True), ~closed)
    if principal.role is Role.coordinator:
        return true()
    if principal.role is Role.caseworker:
        high_in_their_care = select(CaseFile.person_id).where(
            col(CaseFile.confidentiality) == Confidentiality.high,
            col(CaseFile.assigned_caseworkers).any_() == principal.id,
        )
        return or_(~closed, col(Person.id).in_(high_in_their_care))
    if principal.role is Role.analyst:
        return ~closed
    return false()


def searches_private_names(principal: Principal) -> bool:
    """Names the family asked to keep private are confidential: only coordinators, who hold
    that clearance on every person, may find a person by them."""
    return principal.role is Role.coordinator


# Sources and collective events ----------------------------------------------------------


def source_resource(principal: Principal, *, recorded_by: uuid.UUID | None) -> Resource:
    """What the policies know of a source: who recorded it (they keep its witness)."""
    return Resource(
        "Source", recorded_by_caller=not principal.is_partner and recorded_by == principal.id
    )


def cited_source_resource(principal: Principal, *, cited_by_a_shared_record: bool) -> Resource:
    """A source as the policies see it when the caller was shown a citation of it: for a
    partner, shared with it exactly when the record shown citing it is one its agreement
    shares wholly (the change feed says so of what it hands over; nothing else does)."""
    return Resource("Source", shared_with_caller=principal.is_partner and cited_by_a_shared_record)


# A collective event shows only how many case files it moved; each case file's own
# result is shown by the case file's rules.
COLLECTIVE_EVENT = Resource("CollectiveEvent")


# The facility register is public reference data: one resource for every facility.
FACILITY = Resource("Facility")
