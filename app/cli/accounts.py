"""`habeas users` and `habeas partners`: accounts and partner clients made by the system."""

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli.common import database_url, in_session, security_or_exit, validation_problems
from app.core.config import get_settings

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

users = typer.Typer(no_args_is_help=True, help="Staff accounts.")
partners = typer.Typer(no_args_is_help=True, help="Partner organisations' API clients.")


@users.command("add")
def users_add(
    username: str,
    role: Annotated[str, typer.Option(help="admin, coordinator, caseworker, analyst or auditor")],
) -> None:
    """Create an account; prints its one-time enrolment code (never a password) for the
    person, who redeems it at POST /api/v1/auth/enrolment. A role that needs approval
    (HABEAS_ROLES_NEEDING_APPROVAL) waits for a second person's approval (`habeas users
    approve`), except an admin made while no enabled admin exists: there would be nobody
    to approve it."""
    from pydantic import ValidationError

    from app.identity import service
    from app.identity.schemas import UserCreate

    settings = get_settings()
    kit = security_or_exit(settings)
    try:
        data = UserCreate(username=username, role=role)
    except ValidationError as error:
        typer.echo(f"Not created: {validation_problems(error)}", err=True)
        raise typer.Exit(2) from None

    async def work(session: "AsyncSession") -> dict[str, Any]:
        user, code = await service.create_user(
            session, kit, data, requested_by=None, bootstrap=True
        )
        pending = await service.pending_roles(session, [user])
        return {
            "id": str(user.id),
            "username": user.username,
            "role": user.role,
            "pending_role": pending.get(user.id),
            "enrolment_code": code.value,
            "enrolment_expires_at": code.expires_at.isoformat(),
        }

    typer.echo(
        json.dumps(asyncio.run(in_session(settings, database_url(settings), kit=kit, work=work)))
    )


@users.command("approve")
def users_approve(username: str) -> None:
    """Approve the role a user waits for, as the system: for an operator with the server's
    keys and database (who could change anything anyway), e.g. when no second admin or
    coordinator is there to approve. Only once the person has enrolled (confirm with them
    that it was them). Recorded in the audit trail like any approval."""
    from app.core.errors import DomainError
    from app.identity import service

    settings = get_settings()
    kit = security_or_exit(settings)

    async def work(session: "AsyncSession") -> dict[str, Any]:
        request = await service.pending_role_request_of(session, username)
        decided, user = await service.decide_role_request(
            session, request.id, request.version, approve=True, decider=None
        )
        return {"username": user.username, "role": user.role, "request": str(decided.id)}

    try:
        done = asyncio.run(in_session(settings, database_url(settings), kit=kit, work=work))
    except DomainError as error:
        typer.echo(f"Not approved: {error.detail}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(done))


@partners.command("add")
def partners_add(
    name: str,
    scopes: Annotated[str, typer.Option(help='Space-separated, e.g. "sync:read reports:read"')],
    jwks: Annotated[
        Path | None, typer.Option(help="Public JWKS file: authenticate by private-key JWT.")
    ] = None,
    jurisdiction: Annotated[
        str | None, typer.Option(help="Share this jurisdiction's case files.")
    ] = None,
    all_case_files: Annotated[
        bool, typer.Option(help="Share every case file of the jurisdiction, not only recognised.")
    ] = False,
    max_tier: Annotated[str, typer.Option(help="public or restricted")] = "public",
    read_write: Annotated[bool, typer.Option(help="May push changes (sync).")] = False,
) -> None:
    """Register a partner system with its sharing agreement, approved by the system (the
    operator holds the database and the keys; through the API only a coordinator approves
    an agreement); prints its client id (and client secret, once)."""
    from pydantic import ValidationError

    from app.identity import partners
    from app.identity.schemas import AgreementInput, PartnerCreate

    settings = get_settings()
    kit = security_or_exit(settings)
    try:
        data = PartnerCreate.model_validate(
            {
                "name": name,
                "scopes": scopes.split(),
                "auth_method": "private_key_jwt" if jwks else "client_secret",
                "public_jwks": json.loads(jwks.read_text()) if jwks else None,
            }
        )
        agreement = AgreementInput.model_validate(
            {
                "jurisdiction": jurisdiction,
                "recognised_only": not all_case_files,
                "max_tier": max_tier,
                "read_write": read_write,
            }
        )
    except ValidationError as error:
        typer.echo(f"Not created: {validation_problems(error)}", err=True)
        raise typer.Exit(2) from None
    except (ValueError, OSError) as error:
        typer.echo(f"Not created: {error}", err=True)
        raise typer.Exit(2) from None

    async def work(session: "AsyncSession") -> dict[str, Any]:
        partner, secret = await partners.create_partner(
            session, kit, data, system_agreement=agreement
        )
        return {
            "id": str(partner.id),
            "name": partner.name,
            "client_id": partner.client_id,
            "client_secret": secret,
            "scopes": partner.scopes,
        }

    typer.echo(
        json.dumps(asyncio.run(in_session(settings, database_url(settings), kit=kit, work=work)))
    )
