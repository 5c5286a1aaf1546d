import uuid
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from app.access.caller import Caller
from app.access.http import open_route, requires
from app.core.db import SessionDep
from app.core.errors import MalformedJson, UnsupportedMediaType
from app.core.http import IfMatch, etag, model_response, required_version
from app.core.pagination import Page, PageRequest, next_link, page_request
from app.identity import oauth, service
from app.identity.models import AppUser, Partner
from app.identity.schemas import (
    AgreementRead,
    ClientSecret,
    LoginInput,
    PartnerCreate,
    PartnerCreated,
    PartnerRead,
    PartnerUpdate,
    RefreshInput,
    TokenPair,
    TotpEnrolment,
    UserCreate,
    UserCreated,
    UserRead,
    UserUpdate,
)

auth_router = APIRouter(prefix="/auth", tags=["auth"])
users_router = APIRouter(prefix="/users", tags=["users"])
partners_router = APIRouter(prefix="/partners", tags=["partners"])

OPEN = [Depends(open_route)]


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@auth_router.post("/login", response_model=TokenPair, dependencies=OPEN)
async def login(body: LoginInput, session: SessionDep, request: Request) -> Response:
    """Sign in with username, password and the current one-time code."""
    pair = await service.sign_in(
        session,
        request.app.state.security,
        body.username,
        body.password,
        body.code,
        _client_address(request),
    )
    return model_response(pair)


@auth_router.post("/refresh", response_model=TokenPair, dependencies=OPEN)
async def refresh(body: RefreshInput, session: SessionDep, request: Request) -> Response:
    """Exchange a refresh token (once) for a new access token and refresh token."""
    return model_response(
        await service.refresh(session, request.app.state.security, body.refresh_token)
    )


@auth_router.post("/logout", status_code=204)
async def logout(
    session: SessionDep, caller: Annotated[Caller, requires("session.end")]
) -> Response:
    """End this session: its access and refresh tokens stop working at once."""
    await service.end_session(session, caller.principal)
    return Response(status_code=204)


@auth_router.post(
    "/token",
    dependencies=OPEN,
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
                    }
                }
            },
            "required": True,
        }
    },
)
async def token(session: SessionDep, request: Request) -> JSONResponse:
    """OAuth 2.0 client credentials for partner systems (RFC 6749 §4.4), authenticated by
    private-key JWT (RFC 7523) or client secret."""
    values = await _token_form(request)
    token_url = str(request.url_for("token").path)
    outcome = await oauth.token_response(
        session,
        request.app.state.security,
        values,
        request.headers,
        "https://habeas" + token_url,
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


def _user_read(user: AppUser) -> UserRead:
    return UserRead.model_validate(user)


@users_router.post("", status_code=201, response_model=UserCreated)
async def create_user(
    body: UserCreate,
    session: SessionDep,
    request: Request,
    caller: Annotated[Caller, requires("user.manage")],
) -> Response:
    """Create an account; the answer holds the one-time-code secret, shown only here."""
    user, secret = await service.create_user(session, request.app.state.security, body)
    created = UserCreated(
        **_user_read(user).model_dump(),
        totp_secret=secret,
        totp_uri=service.enrolment_uri(user, secret),
    )
    location = request.url_for("read_user", user_id=user.id).path
    return model_response(created, 201, headers={"ETag": etag(user.version), "Location": location})


@users_router.get("", response_model=Page[UserRead])
async def list_users(
    session: SessionDep,
    request: Request,
    paging: Annotated[PageRequest, Depends(page_request)],
    caller: Annotated[Caller, requires("user.manage")],
) -> Response:
    users, cursor = await service.list_users(session, paging.cursor, paging.limit)
    return model_response(
        Page[UserRead](items=[_user_read(u) for u in users], next=next_link(request, cursor))
    )


@users_router.get("/{user_id}", response_model=UserRead)
async def read_user(
    user_id: uuid.UUID, session: SessionDep, caller: Annotated[Caller, requires("user.manage")]
) -> Response:
    user = await service.get_user(session, user_id)
    return model_response(_user_read(user), headers={"ETag": etag(user.version)})


@users_router.patch("/{user_id}", response_model=UserRead)
async def update_user(
    user_id: uuid.UUID,
    body: UserUpdate,
    session: SessionDep,
    request: Request,
    caller: Annotated[Caller, requires("user.manage")],
    if_match: IfMatch = None,
) -> Response:
    """Change the role, disable, or set a password; each ends the user's sessions at once."""
    user = await service.update_user(
        session,
        request.app.state.security,
        user_id,
        required_version(if_match),
        body,
        caller.principal,
    )
    return model_response(_user_read(user), headers={"ETag": etag(user.version)})


@users_router.post("/{user_id}/totp", response_model=TotpEnrolment)
async def reset_totp(
    user_id: uuid.UUID,
    session: SessionDep,
    request: Request,
    caller: Annotated[Caller, requires("user.manage")],
    if_match: IfMatch = None,
) -> Response:
    """A new one-time-code secret (a lost phone); the user's sessions end."""
    user, secret = await service.reset_totp(
        session, request.app.state.security, user_id, required_version(if_match)
    )
    return model_response(
        TotpEnrolment(totp_secret=secret, totp_uri=service.enrolment_uri(user, secret)),
        headers={"ETag": etag(user.version)},
    )


# Partners -----------------------------------------------------------------------------------


def _partner_read(partner: Partner) -> PartnerRead:
    return PartnerRead(
        id=partner.id,
        name=partner.name,
        client_id=partner.client_id,
        auth_method=partner.auth_method,
        scopes=partner.scopes,
        disabled=partner.disabled,
        agreement=AgreementRead(
            jurisdiction=partner.share_jurisdiction,
            recognised_only=partner.share_recognised_only,
            case_file_ids=partner.share_case_file_ids,
            max_tier=partner.max_tier,
            read_write=partner.read_write,
        ),
        version=partner.version,
        created_at=partner.created_at,
        updated_at=partner.updated_at,
    )


@partners_router.post("", status_code=201, response_model=PartnerCreated)
async def create_partner(
    body: PartnerCreate,
    session: SessionDep,
    request: Request,
    caller: Annotated[Caller, requires("partner.manage")],
) -> Response:
    """Register a partner system; a client secret, if any, is shown only here."""
    partner, secret = await service.create_partner(session, request.app.state.security, body)
    created = PartnerCreated(**_partner_read(partner).model_dump(), client_secret=secret)
    location = request.url_for("read_partner", partner_id=partner.id).path
    return model_response(
        created, 201, headers={"ETag": etag(partner.version), "Location": location}
    )


@partners_router.get("", response_model=Page[PartnerRead])
async def list_partners(
    session: SessionDep,
    request: Request,
    paging: Annotated[PageRequest, Depends(page_request)],
    caller: Annotated[Caller, requires("partner.manage")],
) -> Response:
    partners, cursor = await service.list_partners(session, paging.cursor, paging.limit)
    return model_response(
        Page[PartnerRead](
            items=[_partner_read(p) for p in partners], next=next_link(request, cursor)
        )
    )


@partners_router.get("/{partner_id}", response_model=PartnerRead)
async def read_partner(
    partner_id: uuid.UUID,
    session: SessionDep,
    caller: Annotated[Caller, requires("partner.manage")],
) -> Response:
    partner = await service.get_partner(session, partner_id)
    return model_response(_partner_read(partner), headers={"ETag": etag(partner.version)})


@partners_router.patch("/{partner_id}", response_model=PartnerRead)
async def update_partner(
    partner_id: uuid.UUID,
    body: PartnerUpdate,
    session: SessionDep,
    caller: Annotated[Caller, requires("partner.manage")],
    if_match: IfMatch = None,
) -> Response:
    """Change scopes, keys or the sharing agreement, or disable (its tokens stop at once)."""
    partner = await service.update_partner(session, partner_id, required_version(if_match), body)
    return model_response(_partner_read(partner), headers={"ETag": etag(partner.version)})


@partners_router.post("/{partner_id}/secret", response_model=ClientSecret)
async def new_secret(
    partner_id: uuid.UUID,
    session: SessionDep,
    request: Request,
    caller: Annotated[Caller, requires("partner.manage")],
    if_match: IfMatch = None,
) -> Response:
    """Replace a client secret; the old one stops working. Shown only here."""
    secret = await service.new_partner_secret(
        session, request.app.state.security, partner_id, required_version(if_match)
    )
    return model_response(ClientSecret(client_secret=secret))
