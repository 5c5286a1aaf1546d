"""The HTTP face of idempotent creates, shared by every router that creates records."""

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from app.core.db import SessionDep
from app.core.http import audit_keys_of, data_keys_of, idempotency_key, settings_of
from app.idempotency.service import Replay, StoredResponse, fingerprint, respond_once


class IdempotentCreate:
    def __init__(self, request: Request, session: SessionDep, key: str | None) -> None:
        self.request = request
        self.session = session
        self.key = key

    async def run(
        self,
        request_parts: Any,
        produce: Callable[[], Awaitable[StoredResponse]],
        replay: Replay | None = None,
        *,
        refuse_in_flight: bool = False,
    ) -> JSONResponse:
        # Keys are per caller: one caller's key can never replay another's response.
        principal = self.request.state.principal
        scope = f"{principal.audit_name} {self.request.method} {self.request.url.path}"
        stored = await respond_once(
            self.session,
            keys=data_keys_of(self.request),
            scope=scope,
            key=self.key,
            request_fingerprint=fingerprint(audit_keys_of(self.request), request_parts),
            retention=timedelta(hours=settings_of(self.request).idempotency_retention_hours),
            produce=produce,
            replay=replay,
            refuse_in_flight=refuse_in_flight,
        )
        headers = dict(stored.headers)
        if stored.replayed:
            headers["Idempotent-Replayed"] = "true"
        return JSONResponse(stored.body, status_code=stored.status_code, headers=headers)


async def _idempotent_create(
    request: Request,
    session: SessionDep,
    key: Annotated[str | None, Depends(idempotency_key)],
) -> IdempotentCreate:
    return IdempotentCreate(request, session, key)


IdempotentCreateDep = Annotated[IdempotentCreate, Depends(_idempotent_create)]
