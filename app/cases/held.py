"""Whether a case file's person is held, and so whether they are a former political
prisoner (recognised for the case file, no longer held: derived, never decided).

"Held" is the derived `in_custody` column (statuses.in_custody: detained, or a custodial
sentence not passed in absentia); the test is stated once, in Python for reads and in SQL
for list filters, side by side.
"""

from sqlalchemy import ColumnElement, and_, not_
from sqlmodel import col

from app.cases.models import CaseFile
from app.recognition.criteria import RecognitionStatus


def is_former_political_prisoner(case: CaseFile) -> bool:
    return case.recognition_status == RecognitionStatus.political_prisoner and not case.in_custody


def former_political_prisoner() -> ColumnElement[bool]:
    recognised = col(CaseFile.recognition_status) == RecognitionStatus.political_prisoner
    return and_(recognised, not_(col(CaseFile.in_custody)))
