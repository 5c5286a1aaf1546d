from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def current_revision(engine: AsyncEngine) -> str | None:
    """The schema's Alembic revision; raises if the database cannot be reached."""
    async with engine.connect() as connection:
        result = await connection.execute(text("SELECT version_num FROM alembic_version"))
        revision: str | None = result.scalar_one_or_none()
        return revision
