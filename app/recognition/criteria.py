"""Recognition vocabulary: decision statuses and the criteria codes a decision may cite.

G3.1a–c and G3.2a–d are the 2013 Guidelines on the Definition of Political Prisoner
(§3.1: held solely for beliefs, rights work or identity; §3.2: held for political motives
with unfair trial, fabricated charges, disproportion or selective application).
PACE-a…e are PACE Resolution 1900 (2012) §3 (a)–(e).
"""

from collections.abc import Mapping
from enum import StrEnum


class RecognitionStatus(StrEnum):
    not_assessed = "not_assessed"
    under_review = "under_review"
    political_prisoner = "political_prisoner"
    politically_persecuted = "politically_persecuted"
    withdrawn = "withdrawn"


CRITERIA: Mapping[str, str] = {
    "G3.1a": "beliefs, or non-violent exercise of freedom of thought, expression, assembly "
    "or association",
    "G3.1b": "non-violent activity defending human rights",
    "G3.1c": "discrimination: sex, race, language, religion, origin, citizenship or other status",
    "G3.2a": "political motive, with violation of the right to a fair trial",
    "G3.2b": "political motive, with knowingly false or fabricated charges",
    "G3.2c": "political motive, with clearly disproportionate length or conditions",
    "G3.2d": "political motive, with selective or discriminatory application of the law",
    "PACE-a": "detention violates a fundamental ECHR guarantee",
    "PACE-b": "detention for purely political reasons, without connection to any offence",
    "PACE-c": "political motive: length or conditions clearly out of proportion",
    "PACE-d": "political motive: discriminatory compared with other persons",
    "PACE-e": "detention results from clearly unfair proceedings with political motives",
}

# A recognition must say why; other decisions may cite criteria but need not.
REQUIRES_CRITERIA: frozenset[RecognitionStatus] = frozenset(
    {RecognitionStatus.political_prisoner, RecognitionStatus.politically_persecuted}
)
