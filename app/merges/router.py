import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response

from app.access.caller import Caller
from app.core.db import SessionDep
from app.core.http import (
    ETAG_HEADER,
    LOCATION_HEADER,
    DataKeys,
    IfMatch,
    documented_headers,
    etag,
    model_response,
    required_version,
)
from app.idempotency.http import IdempotentCreateDep
from app.idempotency.service import StoredResponse, after_check
from app.identity.http import requires
from app.merges import service
from app.merges.models import PersonMerge
from app.merges.schemas import MergeCreate, MergeList, MergeRead, MovedRead, StayedRead

router = APIRouter(prefix="/persons", tags=["persons"])

_REFUSALS: dict[int | str, Any] = {
    409: {
        "description": (
            "The merge (or unmerge) is refused as asked (`merge-refused`): a person merged "
            "already (`merged_into`), values both hold differently left undecided "
            "(`conflicts`), both held now on case files of their own (`case_file_ids`), "
            "persons stated to be different people, or a merge undone already"
        )
    }
}


def merge_read(record: PersonMerge) -> MergeRead:
    moved = record.moved
    return MergeRead(
        id=record.id,
        person_id=record.person_id,
        merged_person_id=record.merged_person_id,
        reason=record.reason,
        merged_at=record.merged_at,
        merged_by=record.merged_by,
        resolutions=record.resolutions,
        changed_fields=sorted(
            {column.removesuffix("_precision") for column in moved["fields"]}
            | set(moved.get("sealed_fields", []))
        ),
        moved=MovedRead(
            case_file_ids=moved["case_file_ids"],
            recognition_decision_ids=moved["moved_decision_ids"],
            names=len(moved["names"]),
        ),
        unmerged_at=record.unmerged_at,
        unmerged_by=record.unmerged_by,
        stayed=StayedRead.model_validate(record.stayed) if record.stayed is not None else None,
    )


@router.post(
    "/{person_id}/merges",
    status_code=201,
    response_model=MergeRead,
    responses={**documented_headers(201, ETAG_HEADER, LOCATION_HEADER), **_REFUSALS},
)
async def merge_persons(
    person_id: uuid.UUID,
    body: MergeCreate,
    session: SessionDep,
    request: Request,
    once: IdempotentCreateDep,
    keys: DataKeys,
    caller: Annotated[Caller, requires("person.merge")],
    if_match: IfMatch = None,
) -> Response:
    """Merge a duplicate into this person (coordinators): their names, case files (with
    paths, custody and sources) and recognition decisions move here, lists are joined, and
    single values both hold differently are taken as `resolutions` says. The merged person
    becomes a redirect here. If-Match carries this person's ETag; the merged one's version
    goes in the body. The answer's ETag is this person's new version."""
    expected_version = required_version(if_match)

    async def produce() -> StoredResponse:
        record = await service.merge(
            session, caller, person_id, keys=keys, expected_version=expected_version, data=body
        )
        location = request.url_for(
            "read_person_merge", person_id=person_id, merge_id=record.id
        ).path
        kept = await service.kept_version(session, caller, person_id)
        return StoredResponse(
            201,
            merge_read(record).model_dump(mode="json"),
            {"Location": location, "ETag": etag(kept)},
        )

    return await once.run(
        [body.model_dump(mode="json"), expected_version],
        produce,
        after_check(lambda: service.merges_of(session, caller, person_id)),
    )


@router.get("/{person_id}/merges", response_model=MergeList)
async def list_person_merges(
    person_id: uuid.UUID,
    session: SessionDep,
    caller: Annotated[Caller, requires("person.merge")],
) -> Response:
    """The merges into this person, newest first, undone ones too (coordinators)."""
    records = await service.merges_of(session, caller, person_id)
    return model_response(MergeList(items=[merge_read(record) for record in records]))


@router.get("/{person_id}/merges/{merge_id}", response_model=MergeRead)
async def read_person_merge(
    person_id: uuid.UUID,
    merge_id: uuid.UUID,
    session: SessionDep,
    caller: Annotated[Caller, requires("person.merge")],
) -> Response:
    return model_response(merge_read(await service.get(session, caller, person_id, merge_id)))


@router.post(
    "/{person_id}/merges/{merge_id}/unmerge",
    response_model=MergeRead,
    responses={**documented_headers(200, ETAG_HEADER), **_REFUSALS},
)
async def unmerge_persons(
    person_id: uuid.UUID,
    merge_id: uuid.UUID,
    session: SessionDep,
    once: IdempotentCreateDep,
    keys: DataKeys,
    caller: Annotated[Caller, requires("person.merge")],
    if_match: IfMatch = None,
) -> Response:
    """Undo a merge: the merged person is given back exactly as they were, with what came
    from them; what was added to this person since stays here and is listed in `stayed`.
    If-Match carries this person's ETag."""
    expected_version = required_version(if_match)

    async def produce() -> StoredResponse:
        record = await service.unmerge(
            session, caller, person_id, merge_id, keys=keys, expected_version=expected_version
        )
        kept = await service.kept_version(session, caller, person_id)
        return StoredResponse(200, merge_read(record).model_dump(mode="json"), {"ETag": etag(kept)})

    return await once.run(
        [str(merge_id), expected_version],
        produce,
        after_check(lambda: service.get(session, caller, person_id, merge_id)),
    )
