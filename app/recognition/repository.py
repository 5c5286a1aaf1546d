import uuid

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.recognition.models import RecognitionDecision


async def add(session: AsyncSession, decision: RecognitionDecision) -> None:
    session.add(decision)
    await session.flush()


async def decisions_of(session: AsyncSession, person_id: uuid.UUID) -> list[RecognitionDecision]:
    stmt = (
        select(RecognitionDecision)
        .where(RecognitionDecision.person_id == person_id)
        .order_by(col(RecognitionDecision.version).desc())
    )
    return list(await session.exec(stmt))
