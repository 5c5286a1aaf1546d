"""Recognition vocabulary: decision statuses, the criteria a decision may cite (with their
version and source texts), and the exclusion codes a withdrawal must give.

G3.1a–c and G3.2a–d are the 2013 Guidelines on the Definition of Political Prisoner
(§3.1: held solely for beliefs, rights work or identity; §3.2: held for political motives
with unfair trial, fabricated charges, disproportion or selective application). Our texts
of them are paraphrases until they are checked against the published Guidelines, and the
table says so. PACE-a…e are PACE Resolution 1900 (2012) §3 (a)–(e), in its official
wording.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class RecognitionStatus(StrEnum):
    not_assessed = "not_assessed"
    under_review = "under_review"
    political_prisoner = "political_prisoner"
    politically_persecuted = "politically_persecuted"
    withdrawn = "withdrawn"


class Wording(StrEnum):
    """Whether a criterion's text here is the source's own words."""

    official = "official"
    paraphrase = "paraphrase"


@dataclass(frozen=True)
class CriteriaSource:
    id: str
    title: str
    part: str
    url: str
    note: str


@dataclass(frozen=True)
class Criterion:
    source: str
    text: str
    wording: Wording
    note: str | None = None


# Moves on whenever a text, a wording mark or a source changes. "1" had paraphrased PACE
# texts; "2" has PACE 1900 §3 in its official wording and marks the paraphrases.
CRITERIA_VERSION = "2"

GUIDELINES = "guidelines-2013"
PACE_1900 = "pace-1900"

SOURCES: Mapping[str, CriteriaSource] = {
    GUIDELINES: CriteriaSource(
        id=GUIDELINES,
        title="Guidelines on the Definition of Political Prisoner (2013)",
        part="§3.1 (a)–(c), §3.2 (a)–(d)",
        url="https://spring96.org/en/news/67186",
        note="Presented at the 3rd Human Rights Forum, Vilnius, October 2013; adopted by "
        "Viasna, Memorial and OVD-Info.",
    ),
    PACE_1900: CriteriaSource(
        id=PACE_1900,
        title="PACE Resolution 1900 (2012), The definition of political prisoner",
        part="§3 (a)–(e)",
        url="https://pace.coe.int/en/files/19150",
        note="Parliamentary Assembly of the Council of Europe, 3 October 2012.",
    ),
}

_TO_CHECK = "to be checked against the published Guidelines"


def _guideline(text: str) -> Criterion:
    return Criterion(GUIDELINES, text, Wording.paraphrase, _TO_CHECK)


def _pace(text: str) -> Criterion:
    return Criterion(PACE_1900, text, Wording.official)


CRITERIA: Mapping[str, Criterion] = {
    "G3.1a": _guideline(
        "deprived of liberty solely because of political, religious or other beliefs, or "
        "the non-violent exercise of freedom of thought, conscience and religion, "
        "expression and information, peaceful assembly and association"
    ),
    "G3.1b": _guideline(
        "deprived of liberty solely because of non-violent activity defending human rights"
    ),
    "G3.1c": _guideline(
        "deprived of liberty solely because of sex, race, colour, language, religion, "
        "national, ethnic or social origin, birth, citizenship, sexual orientation, gender "
        "identity, property or other status"
    ),
    "G3.2a": _guideline(
        "deprived of liberty for political motives, with a violation of the right to a fair "
        "trial or of other rights under the ICCPR or the ECHR"
    ),
    "G3.2b": _guideline(
        "deprived of liberty for political motives, on knowingly false or fabricated charges"
    ),
    "G3.2c": _guideline(
        "deprived of liberty for political motives, for a length or in conditions clearly "
        "out of proportion"
    ),
    "G3.2d": _guideline(
        "deprived of liberty for political motives, by a selective or discriminatory "
        "application of the law"
    ),
    "PACE-a": _pace(
        "if the detention has been imposed in violation of one of the fundamental guarantees "
        "set out in the European Convention on Human Rights and its Protocols (ECHR), in "
        "particular freedom of thought, conscience and religion, freedom of expression and "
        "information, freedom of assembly and association"
    ),
    "PACE-b": _pace(
        "if the detention has been imposed for purely political reasons without connection "
        "to any offence"
    ),
    "PACE-c": _pace(
        "if, for political motives, the length of the detention or its conditions are "
        "clearly out of proportion to the offence the person has been found guilty of or is "
        "suspected of"
    ),
    "PACE-d": _pace(
        "if, for political motives, he or she is detained in a discriminatory manner as "
        "compared to other persons"
    ),
    "PACE-e": _pace(
        "if the detention is the result of proceedings which were clearly unfair and this "
        "appears to be connected with political motives of the authorities"
    ),
}

# A recognition must say why; other decisions may cite criteria but need not.
REQUIRES_CRITERIA: frozenset[RecognitionStatus] = frozenset(
    {RecognitionStatus.political_prisoner, RecognitionStatus.politically_persecuted}
)


class ExclusionCode(StrEnum):
    """Why a recognition is withdrawn, or why someone persecuted is not recognised.

    The exclusions of the Guidelines' practice (Memorial's, followed by Viasna): violence
    against persons, or incitement to violence or hatred; and PACE 1900 §4 (terrorist
    crimes prosecuted and tried in line with national law and the ECHR). Release is not
    among them: a recognised prisoner who is released becomes a former political prisoner,
    which is derived, not decided.
    """

    advocated_violence = "advocated_violence"
    committed_violent_offence = "committed_violent_offence"
    terrorism_lawfully_prosecuted = "terrorism_lawfully_prosecuted"
    new_information = "new_information"
    other = "other"


EXCLUSION_TEXTS: Mapping[ExclusionCode, str] = {
    ExclusionCode.advocated_violence: "called for violence, or incited hatred on grounds of "
    "race, religion, ethnicity or the like",
    ExclusionCode.committed_violent_offence: "used or prepared violence against persons",
    ExclusionCode.terrorism_lawfully_prosecuted: "prosecuted for terrorist crimes in line with "
    "national law and the ECHR (PACE 1900 §4)",
    ExclusionCode.new_information: "new information contradicts the grounds of the decision "
    "(the charges were not political, the facts were wrong)",
    ExclusionCode.other: "another reason, stated in the rationale",
}

# A withdrawal states its reason: a rationale and one of the exclusion codes.
REQUIRES_EXCLUSION: frozenset[RecognitionStatus] = frozenset({RecognitionStatus.withdrawn})
# Someone persecuted may be left unrecognised for an exclusion; a recognition has none.
ALLOWS_EXCLUSION: frozenset[RecognitionStatus] = REQUIRES_EXCLUSION | {
    RecognitionStatus.politically_persecuted
}
