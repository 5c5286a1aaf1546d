import uuid
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlmodel.ext.asyncio.session import AsyncSession

from app.access.caller import Caller
from app.access.principal import Role
from app.core.db import SessionDep
from app.core.errors import MalformedJson, UnsupportedMediaType
from app.core.http import (
    ETAG_HEADER,
    LOCATION_HEADER,
    IfMatch,
    documented_headers,
    etag,
    model_response,
    required_version,
)
from app.core.pagination import Page, PageRequest, next_link, page_request
from app.identity import oauth, partners, service, signin
from app.identity.http import Security, open_route, requires
from app.identity.models import AppUser, Partner, RoleRequest
from app.identity.schemas import (
    AgreementInput,
    AgreementRead,
    ClientSecret,
    EnrolmentConfirmation,
    EnrolmentInput,
    LoginInput,
    PartnerCreate,
    PartnerCreated,
    PartnerRead,
    PartnerUpdate,
    RefreshInput,
    RoleRequestRead,
    TokenPair,
    TotpEnrolment,
    UserCreate,
    UserEnrolment,
    UserRead,
    UserUpdate,
)

auth_router = APIRouter(prefix="/auth", tags=["auth"])
users_router = APIRouter(prefix="/users", tags=["users"])
role_requests_router = APIRouter(prefix="/role-requests", tags=["users"])
partners_router = APIRouter(prefix="/partners", tags=["partners"])

OPEN = [Depends(open_route)]
THROTTLED: dict[str, Any] = {
    "description": "Too many failed attempts (app/core/config.py, `login_*`): a problem"
    " document; wait the `Retry-After` seconds",
    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    "content": {"application/problem+json": {}},
}


# RFC 6749 §5.2: the token endpoint answers refusals in OAuth's own format.
OAUTH_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "examples": ["invalid_client"]},
        "error_description": {"type": "string"},
    },
}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {}}}


# The refusals every decision on an account or a role request can meet.
DECISION_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: _problem("No valid access token"),
    404: _problem("No such user or request"),
    412: _problem("It changed since it was read: read it again"),
    428: _problem("If-Match is missing"),
}


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@auth_router.post(
    "/login",
    response_model=TokenPair,
    dependencies=OPEN,
    responses={
        401: _problem(
            "`sign-in-failed`: one answer for an unknown user, a wrong password and a wrong"
            " or reused code"
        ),
        429: THROTTLED,
    },
)
async def login(body: LoginInput, session: SessionDep, kit: Security, request: Request) -> Response:
    """Sign in with username, password and the current one-time code."""
    pair = await signin.sign_in(
        session,
        kit,
        username=body.username,
        password=body.password,
        code=body.code,
        address=_client_address(request),
    )
    return model_response(pair)


@auth_router.post(
    "/refresh",
    response_model=TokenPair,
    dependencies=OPEN,
    responses={
        401: _problem(
            "The refresh token is not valid, has expired or was used already (which ends"
            " its session)"
        )
    },
)
async def refresh(body: RefreshInput, session: SessionDep, kit: Security) -> Response:
    """Exchange a refresh token (once) for a new access token and refresh token."""
    return model_response(await signin.refresh(session, kit, body.refresh_token))


@auth_router.post("/logout", status_code=204)
async def logout(
    session: SessionDep, caller: Annotated[Caller, requires("session.end")]
) -> Response:
    """End this session: its access and refresh tokens stop working at once."""
    await signin.end_session(session, caller.principal)
    return Response(status_code=204)


ENROLMENT_FAILED: dict[str, Any] = {
    "description": "The enrolment code is wrong, expired or used (one answer for all), or the"
    " authenticator's code does not match: a problem document",
    "content": {"application/problem+json": {}},
}


@auth_router.post(
    "/enrolment",
    response_model=TotpEnrolment,
    dependencies=OPEN,
    responses={400: ENROLMENT_FAILED, 429: THROTTLED},
)
async def enrol(
    body: EnrolmentInput, session: SessionDep, kit: Security, request: Request
) -> Response:
    """Redeem an enrolment code, step one: choose your password. The answer holds the
    secret for your authenticator app, shown only here; confirm it with its first code
    (POST /auth/enrolment/confirmation) before the code runs out. Until then the account
    cannot sign in, and this step can be repeated."""
    user, secret = await service.start_enrolment(
        session,
        kit,
        body.enrolment_code,
        password=body.password,
        address=_client_address(request),
    )
    return model_response(
        TotpEnrolment(
            username=user.username,
            totp_secret=secret,
            totp_uri=service.enrolment_uri(user, secret),
        )
    )


@auth_router.post(
    "/enrolment/confirmation",
    status_code=204,
    dependencies=OPEN,
    responses={400: ENROLMENT_FAILED, 429: THROTTLED},
)
async def confirm_enrolment(
    body: EnrolmentConfirmation, session: SessionDep, kit: Security, request: Request
) -> Response:
    """Redeem an enrolment code, step two: the current code of your authenticator app. The
    enrolment code is then used up, and you can sign in (once your role is approved, if it
    needs approval)."""
    await service.confirm_enrolment(
        session,
        kit,
        body.enrolment_code,
        one_time_code=body.code,
        address=_client_address(request),
        user_agent=request.headers.get("user-agent"),
    )
    return Response(status_code=204)


@auth_router.post(
    "/token",
    dependencies=OPEN,
    responses={
        400: {
            "description": "An OAuth error (RFC 6749 §5.2), e.g. `invalid_scope`; or a form"
            " that cannot be read (a problem document)",
            "content": {
                "application/json": {"schema": OAUTH_ERROR},
                "application/problem+json": {},
            },
        },
        401: {
            "description": "`invalid_client`, one answer for an unknown client, a wrong"
            " secret, a bad assertion and a disabled partner",
            "content": {"application/json": {"schema": OAUTH_ERROR}},
        },
        429: THROTTLED,
    },
    openapi_extra={
        "requestBody": {
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "grant_type": {"type": "string", "enum": ["client_credentials"]},
                            "scope": {"type": "string"},
                            "client_id": {"type": "string"},
                            "client_secret": {"type": "string"},
                            "client_assertion_type": {"type": "string"},
                            "client_assertion": {"type": "string"},
                        },
                        "required": ["grant_type"],
                        # Others are ignored (RFC 6749 §3.2), but none may be repeated.
                        "additionalProperties": {"type": "string"},
                    }
                }
            },
            "required": True,
        }
    },
)
async def token(session: SessionDep, kit: Security, request: Request) -> JSONResponse:
    """OAuth 2.0 client credentials for partner systems (RFC 6749 §4.4), authenticated by
    private-key JWT (RFC 7523) or client secret."""
    values = await _token_form(request)
    token_url = str(request.url_for("token").path)
    outcome = await oauth.token_response(
        session,
        kit,
        form=values,
        headers=request.headers,
        token_url="https://habeas" + token_url,
        address=_client_address(request),
    )
    # authlib's own Cache-Control/Pragma are left out: every response gets them once from
    # the security headers middleware.
    return JSONResponse(outcome.body, status_code=outcome.status)


async def _token_form(request: Request) -> dict[str, str]:
    """The token request's form (RFC 6749 §4.4.2: application/x-www-form-urlencoded)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType("Send the token request as application/x-www-form-urlencoded.")
    try:
        pairs = parse_qsl(
            (await request.body()).decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=20,
        )
    except (UnicodeDecodeError, ValueError) as error:
        raise MalformedJson("The form could not be parsed.") from error
    values: dict[str, str] = {}
    for key, value in pairs:
        if key in values:
            # RFC 6749 §3.2: parameters must not be repeated.
            raise MalformedJson(f"The parameter {key} is repeated.")
        values[key] = value
    return values


# Users --------------------------------------------------------------------------------------


def _user_read(user: AppUser, pending: dict[uuid.UUID, Role]) -> UserRead:
    return UserRead(
        id=user.id,
        username=user.username,
        role=user.role,
        pending_role=pending.get(user.id),
        enrolled=user.enrolled,
        disabled=user.disabled,
        version=user.version,
        created_at=user.created_at,
        updated_at=user.updated_at,
    )


async def _one_user_read(session: AsyncSession, user: AppUser) -> UserRead:
    return _user_read(user, await service.pending_roles(session, [user]))


def _enrolment(read: UserRead, code: service.EnrolmentCode) -> UserEnrolment:
    return UserEnrolment(
        **read.model_dump(), enrolment_code=code.value, enrolment_expires_at=code.expires_at
    )


@users_router.post(
    "",
    status_code=201,
    response_model=UserEnrolment,
    responses={
        **documented_headers(201, ETAG_HEADER, LOCATION_HEADER),
        409: _problem("The username is taken"),
    },
)
async def create_user(
    body: UserCreate,
    session: SessionDep,
    kit: Security,
    request: Request,
    caller: Annotated[Caller, requires("user.manage")],
) -> Response:
    """Create an account. The answer holds its enrolment code, shown only here: hand it to
    the person, who chooses their own password and gets their own TOTP secret with it
    (POST /auth/enrolment). A role that needs approval (by default admin and every role
    that reads case content) waits for a second person's approval (/role-requests)."""
    user, code = await service.create_user(session, kit, body, requested_by=caller.principal.id)
    created = _enrolment(await _one_user_read(session, user), code)
    location = request.url_for("read_user", user_id=user.id).path
    return model_response(
        created, status_code=201, headers={"ETag": etag(user.version), "Location": location}
    )


@users_router.get("", response_model=Page[UserRead])
async def list_users(
    session: SessionDep,
    request: Request,
    paging: Annotated[PageRequest, Depends(page_request)],
    caller: Annotated[Caller, requires("user.manage")],
) -> Response:
    users, cursor = await service.list_users(session, paging.cursor, paging.limit)
    pending = await service.pending_roles(session, users)
    return model_response(
        Page[UserRead](
            items=[_user_read(u, pending) for u in users], next=next_link(request, cursor)
        )
    )


@users_router.get(
    "/{user_id}", response_model=UserRead, responses=documented_headers(200, ETAG_HEADER)
)
async def read_user(
    user_id: uuid.UUID, session: SessionDep, caller: Annotated[Caller, requires("user.manage")]
) -> Response:
    user = await service.get_user(session, user_id)
    return model_response(await _one_user_read(session, user), headers={"ETag": etag(user.version)})


@users_router.patch(
    "/{user_id}",
    response_model=UserRead,
    responses={
        **documented_headers(200, ETAG_HEADER),
        409: _problem("Admins cannot disable themselves or give up their own role"),
    },
)
async def update_user(
    user_id: uuid.UUID,
    body: UserUpdate,
    session: SessionDep,
    kit: Security,
    caller: Annotated[Caller, requires("user.manage")],
    if_match: IfMatch = None,
) -> Response:
    """Change the role or disable; either ends the user's sessions at once. A role that
    needs approval and grants more than the current one is asked for instead, and granted
    once a second person approves; one that reads no more case content takes effect at
    once."""
    user = await service.update_user(
        session,
        kit,
        user_id,
        expected_version=required_version(if_match),
        data=body,
        actor=caller.principal,
    )
    return model_response(await _one_user_read(session, user), headers={"ETag": etag(user.version)})


@users_router.post(
    "/{user_id}/reset",
    response_model=UserEnrolment,
    responses={
        **documented_headers(200, ETAG_HEADER),
        **DECISION_REFUSALS,
        403: _problem("Only admins reset accounts"),
        409: _problem("Admins cannot reset their own account"),
    },
)
async def reset_user(
    user_id: uuid.UUID,
    session: SessionDep,
    kit: Security,
    caller: Annotated[Caller, requires("user.manage")],
    if_match: IfMatch = None,
) -> Response:
    """A lost password or phone: clears the password and TOTP secret, ends every session at
    once, and answers with a new enrolment code (older ones stop working). A role that
    needs approval is suspended, and any role request is withdrawn and filed anew: a second
    person approves it once the person has enrolled again."""
    user, code = await service.reset_user(
        session,
        kit,
        user_id,
        expected_version=required_version(if_match),
        actor=caller.principal,
    )
    return model_response(
        _enrolment(await _one_user_read(session, user), code),
        headers={"ETag": etag(user.version)},
    )


# Role requests -------------------------------------------------------------------------------


def _role_request_read(request: RoleRequest, user: AppUser) -> RoleRequestRead:
    return RoleRequestRead(
        id=request.id,
        user_id=request.user_id,
        username=user.username,
        role=Role(request.role),
        status=request.status,
        requested_by=request.requested_by,
        requested_at=request.requested_at,
        decided_by=request.decided_by,
        decided_at=request.decided_at,
        enrolled_at=user.enrolled_at,
        enrolled_from_address=user.enrolled_from_address,
        enrolled_user_agent=user.enrolled_user_agent,
        version=request.version,
    )


@role_requests_router.get("", response_model=Page[RoleRequestRead])
async def list_role_requests(
    session: SessionDep,
    request: Request,
    paging: Annotated[PageRequest, Depends(page_request)],
    caller: Annotated[Caller, requires("user.approve_role")],
) -> Response:
    """Roles waiting for a second person's approval, oldest first, with when and from where
    each account enrolled: confirm with the person, out of band, that it was them."""
    found, users, cursor = await service.list_role_requests(session, paging.cursor, paging.limit)
    return model_response(
        Page[RoleRequestRead](
            items=[_role_request_read(r, users[r.user_id]) for r in found],
            next=next_link(request, cursor),
        )
    )


async def _decide(
    session: AsyncSession,
    request_id: uuid.UUID,
    *,
    if_match: str | None,
    caller: Caller,
    approve: bool,
) -> Response:
    decided, user = await service.decide_role_request(
        session,
        request_id,
        required_version(if_match),
        approve=approve,
        decider=caller.principal,
    )
    return model_response(
        _role_request_read(decided, user), headers={"ETag": etag(decided.version)}
    )


@role_requests_router.post(
    "/{request_id}/approval",
    response_model=RoleRequestRead,
    responses={
        **documented_headers(200, ETAG_HEADER),
        **DECISION_REFUSALS,
        403: _problem("Not an admin or coordinator, or the one who asked or would hold it"),
        409: _problem("The request is decided already, or the account is not enrolled yet"),
    },
)
async def approve_role_request(
    request_id: uuid.UUID,
    session: SessionDep,
    caller: Annotated[Caller, requires("user.approve_role")],
    if_match: IfMatch = None,
) -> Response:
    """Grant the role. Not by the one who asked for it, nor by the one who would hold it,
    and only once the account is enrolled (409 before): first confirm with the person, out
    of band, that they enrolled (`enrolled_at`, `enrolled_from_address`,
    `enrolled_user_agent`). The user's sessions end, so that the next ones carry the
    role."""
    return await _decide(session, request_id, if_match=if_match, caller=caller, approve=True)


@role_requests_router.post(
    "/{request_id}/rejection",
    response_model=RoleRequestRead,
    responses={
        **documented_headers(200, ETAG_HEADER),
        **DECISION_REFUSALS,
        403: _problem("Not an admin or coordinator, or the one who asked or would hold it"),
        409: _problem("The request is decided already"),
    },
)
async def reject_role_request(
    request_id: uuid.UUID,
    session: SessionDep,
    caller: Annotated[Caller, requires("user.approve_role")],
    if_match: IfMatch = None,
) -> Response:
    """Refuse the role; the user keeps the one they hold."""
    return await _decide(session, request_id, if_match=if_match, caller=caller, approve=False)


# Partners -----------------------------------------------------------------------------------


def _partner_read(partner: Partner) -> PartnerRead:
    return PartnerRead(
        id=partner.id,
        name=partner.name,
        client_id=partner.client_id,
        auth_method=partner.auth_method,
        scopes=partner.scopes,
        disabled=partner.disabled,
        key_thumbprints=partners.key_thumbprints(partner),
        agreement=AgreementRead(
            jurisdiction=partner.share_jurisdiction,
            recognised_only=partner.share_recognised_only,
            case_file_ids=partner.share_case_file_ids,
            max_tier=partner.max_tier,
            read_write=partner.read_write,
            trusted_as_confirmed=partner.trusted_as_confirmed,
            approved=partner.agreement_approved,
            approved_by=partner.agreement_approved_by,
            approved_at=partner.agreement_approved_at,
        ),
        version=partner.version,
        created_at=partner.created_at,
        updated_at=partner.updated_at,
    )


@partners_router.post(
    "",
    status_code=201,
    response_model=PartnerCreated,
    responses={
        **documented_headers(201, ETAG_HEADER, LOCATION_HEADER),
        409: _problem("A partner with that name exists"),
    },
)
async def create_partner(
    body: PartnerCreate,
    session: SessionDep,
    kit: Security,
    request: Request,
    caller: Annotated[Caller, requires("partner.manage")],
) -> Response:
    """Register a partner system; a client secret, if any, is shown only here. It has no
    sharing agreement, and sees nothing, until a coordinator sets one (PUT …/agreement)."""
    partner, secret = await partners.create_partner(session, kit, body)
    created = PartnerCreated(**_partner_read(partner).model_dump(), client_secret=secret)
    location = request.url_for("read_partner", partner_id=partner.id).path
    return model_response(
        created, status_code=201, headers={"ETag": etag(partner.version), "Location": location}
    )


@partners_router.get("", response_model=Page[PartnerRead])
async def list_partners(
    session: SessionDep,
    request: Request,
    paging: Annotated[PageRequest, Depends(page_request)],
    caller: Annotated[Caller, requires("partner.read")],
) -> Response:
    """Partner systems and what each is shared (admins and coordinators)."""
    found, cursor = await partners.list_partners(session, paging.cursor, paging.limit)
    return model_response(
        Page[PartnerRead](items=[_partner_read(p) for p in found], next=next_link(request, cursor))
    )


@partners_router.get(
    "/{partner_id}", response_model=PartnerRead, responses=documented_headers(200, ETAG_HEADER)
)
async def read_partner(
    partner_id: uuid.UUID,
    session: SessionDep,
    caller: Annotated[Caller, requires("partner.read")],
) -> Response:
    partner = await partners.get_partner(session, partner_id)
    return model_response(_partner_read(partner), headers={"ETag": etag(partner.version)})


@partners_router.patch(
    "/{partner_id}",
    response_model=PartnerRead,
    responses={
        **documented_headers(200, ETAG_HEADER),
        409: _problem("New public keys for a partner that authenticates with a secret"),
    },
)
async def update_partner(
    partner_id: uuid.UUID,
    body: PartnerUpdate,
    session: SessionDep,
    caller: Annotated[Caller, requires("partner.manage")],
    if_match: IfMatch = None,
) -> Response:
    """Change scopes or keys, or disable (its tokens stop at once). New keys suspend the
    sharing agreement until a coordinator approves it again."""
    partner = await partners.update_partner(
        session, partner_id, expected_version=required_version(if_match), data=body
    )
    return model_response(_partner_read(partner), headers={"ETag": etag(partner.version)})


@partners_router.post(
    "/{partner_id}/secret",
    response_model=ClientSecret,
    responses={
        **documented_headers(200, ETAG_HEADER),
        409: _problem("The partner authenticates with a private-key JWT: it has no secret"),
    },
)
async def new_secret(
    partner_id: uuid.UUID,
    session: SessionDep,
    kit: Security,
    caller: Annotated[Caller, requires("partner.manage")],
    if_match: IfMatch = None,
) -> Response:
    """Replace a client secret; the old one stops working. Shown only here. The sharing
    agreement is suspended until a coordinator approves it again."""
    secret = await partners.new_partner_secret(
        session, kit, partner_id, expected_version=required_version(if_match)
    )
    return model_response(ClientSecret(client_secret=secret))


@partners_router.put(
    "/{partner_id}/agreement",
    response_model=PartnerRead,
    responses={
        **documented_headers(200, ETAG_HEADER),
        401: _problem("No valid access token"),
        403: _problem("Only coordinators decide what a partner is shared"),
        404: _problem("No such partner"),
        412: _problem(
            "The partner changed since it was read (e.g. its credentials): read it again"
            " and decide on what it is now"
        ),
        422: _problem("The agreement is not valid"),
        428: _problem("If-Match is missing"),
    },
)
async def share_with_partner(
    partner_id: uuid.UUID,
    body: AgreementInput,
    session: SessionDep,
    caller: Annotated[Caller, requires("partner.share")],
    if_match: IfMatch = None,
) -> Response:
    """Set the partner's whole sharing agreement, and so approve it; with the agreement it
    has, to approve it again after a change of its credentials. For a private_key_jwt
    partner, confirm its `key_thumbprints` with the partner first."""
    partner = await partners.share_with_partner(
        session,
        partner_id,
        expected_version=required_version(if_match),
        agreement=body,
        approved_by=caller.principal.id,
    )
    return model_response(_partner_read(partner), headers={"ETag": etag(partner.version)})
