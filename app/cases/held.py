"""Whether a case file's person is held, and so whether they are a former political
prisoner (recognised for the case file, no longer held: derived, never decided).

The test is stated once, in Python for reads and in SQL for list filters, side by side.
For now "held" is a status in IN_CUSTODY (detained, sentenced); when a derived
`in_custody` column exists, both forms become that column.
"""

from sqlalchemy import ColumnElement, and_, not_
from sqlmodel import col

from app.cases.models import CaseFile
from app.cases.statuses import IN_CUSTODY, Status
from app.recognition.criteria import RecognitionStatus


def is_held(case: CaseFile) -> bool:
    return Status(case.status) in IN_CUSTODY


def held() -> ColumnElement[bool]:
    return col(CaseFile.status).in_(list(IN_CUSTODY))


def is_former_political_prisoner(case: CaseFile) -> bool:
    return case.recognition_status == RecognitionStatus.political_prisoner and not is_held(case)


def former_political_prisoner() -> ColumnElement[bool]:
    recognised = col(CaseFile.recognition_status) == RecognitionStatus.political_prisoner
    return and_(recognised, not_(held()))
