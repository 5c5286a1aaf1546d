"""Account and partner lists page by id with cursors bound to their list."""

from collections.abc import Awaitable, Callable

from fastapi import FastAPI

from app.access.principal import Role
from tests.auth import SignedIn, create_account, create_partner


async def test_users_and_partners_page_through_every_row_once(
    app: FastAPI, sign_in_as: Callable[..., Awaitable[SignedIn]]
) -> None:
    admin = (await sign_in_as(Role.admin)).client
    for _ in range(4):
        await create_account(app, Role.analyst)
        await create_partner(app, scopes=["sync:read"])
    for path, expected in (("/api/v1/users", 5), ("/api/v1/partners", 4)):
        seen: list[str] = []
        url: str | None = f"{path}?limit=2"
        while url:
            page = (await admin.get(url)).json()
            assert len(page["items"]) <= 2
            seen += [item["id"] for item in page["items"]]
            url = page["next"]
        assert len(seen) == len(set(seen)) == expected
    # A users cursor is refused for the partners list.
    cursor = (await admin.get("/api/v1/users?limit=2")).json()["next"].split("cursor=")[1]
    refused = await admin.get(f"/api/v1/partners?limit=2&cursor={cursor}")
    assert refused.status_code == 400
