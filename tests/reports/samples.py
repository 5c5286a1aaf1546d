"""A status report as GET /api/v1/reports/{id} answers it (docs/reports.md), with synthetic
people: Cyrillic and Latin names with diacritics, and several months of series."""

from typing import Any

from app.cases.statuses import SentenceType
from app.reports.asof import RELEASE_MODES, TERM_BANDS

SENTENCE_TYPES = [sentence.value for sentence in SentenceType]

CYRILLIC_NAME = "Алесь Тестовы"
LATIN_NAME = "Łukasz Ąę"
CONTENT_SHA256 = "3f" * 32


def sample_report() -> dict[str, Any]:
    released_by_mode = dict.fromkeys(RELEASE_MODES, 0) | {
        "sentence_served": 9,
        "pardoned": 3,
        "pardoned_and_deported": 52,
        "released_pending_trial": 2,
    }
    return {
        "id": "0193a5b0-0000-7000-8000-000000000001",
        "kind": "status",
        "generated_at": "2025-10-01T08:00:00Z",
        "generated_by": "0193a5b0-0000-7000-8000-0000000000aa",
        "generator_version": "2",
        "parameters": {
            "as_of": "2025-09-30",
            "period": {"from": "2025-09-01", "to": "2025-09-30"},
            "as_known_at": "2025-10-01T07:59:55Z",
            "baseline": "2020-01-01",
            "jurisdiction": "BY",
            "held_deprivation_types": [
                "pretrial_custody",
                "imprisonment",
                "restriction_of_freedom",
                "psychiatric",
            ],
            "chart_years": 3,
        },
        "content_sha256": CONTENT_SHA256,
        "figures": {
            "held": {
                "total": 1104,
                "recognised": 1021,
                "politically_persecuted": 57,
                "by_status": {"detained": 131, "sentenced": 973},
                "by_deprivation": {
                    "pretrial_custody": 131,
                    "imprisonment": 940,
                    "restriction_of_freedom": 25,
                    "psychiatric": 8,
                },
                "by_sentence_type": dict.fromkeys(SENTENCE_TYPES, 0)
                | {
                    "imprisonment": 940,
                    "restriction_of_freedom_open_facility": 25,
                    "compulsory_treatment": 8,
                },
                "by_jurisdiction": {"BY": 1104},
            },
            "at_liberty": {"prosecuted": 213},
            "period": {
                "new_detentions": 41,
                "new_recognitions": 37,
                "sentences": {
                    "total": 30,
                    "by_type": dict.fromkeys(SENTENCE_TYPES, 0)
                    | {"imprisonment": 26, "restriction_of_freedom_open_facility": 3, "fine": 1},
                    "by_term_band": dict.fromkeys(TERM_BANDS, 0)
                    | {"1_3y": 12, "3_5y": 10, "5_10y": 4, "10y_plus": 3, "no_term": 1},
                },
                "released": {"total": 66, "by_mode": released_by_mode},
                "deported": {"total": 52, "by_destination": {"LT": 52}},
                "released_foreign_by_citizenship": {
                    "DE": 2,
                    "FR": 1,
                    "GB": 1,
                    "LT": 6,
                    "LV": 2,
                    "PL": 2,
                },
                "deaths_in_custody": 1,
            },
            "cumulative": {
                "deaths_in_custody_since_baseline": 9,
                "detentions_since_baseline": 4380,
                "releases_since_baseline": 3276,
            },
            "claims": {
                "unconfirmed": {
                    "count": 2,
                    "by_status": {"released": 1, "pardoned": 0, "died_in_custody": 1},
                    "items": [
                        {
                            "to_status": "released",
                            "effective_date": "2025-09",
                            "name": CYRILLIC_NAME,
                        },
                        {
                            "to_status": "died_in_custody",
                            "effective_date": "2025-09-14",
                            "name": None,
                        },
                    ],
                }
            },
            "breakdowns": {
                "foreign_by_citizenship": {"LT": 3, "PL": 2, "UA": 7},
                "by_gender": {"female": 167, "male": 935, "unknown": 2},
                "by_age_band": {
                    "under_18": 1,
                    "18_29": 190,
                    "30_39": 401,
                    "40_49": 305,
                    "50_59": 140,
                    "60_plus": 60,
                    "unknown": 7,
                },
                "by_region": {"BY-BR": 98, "BY-HM": 402, "BY-HO": 120, "BY-MI": 484},
                "by_article": {"342": 480, "361-1": 210, "130": 160},
                "by_sentence_band": dict.fromkeys(TERM_BANDS, 0)
                | {"under_1y": 20, "1_3y": 410, "3_5y": 300, "5_10y": 190, "10y_plus": 53},
            },
            "by_collective_event": [
                {
                    "id": "0193a5b0-0000-7000-8000-0000000000c1",
                    "title": "Памілаванне і высылка ў Літву",
                    "kind": "pardon",
                    "effective_date": "2025-09-11",
                    "to_status": "pardoned",
                    "destination_country": None,
                    "expelled_to": "LT",
                    "case_files": 52,
                    "foreign_nationals": 14,
                }
            ],
            "series": {
                "held_by_month": [
                    {"month_end": month_end, "held": held, "recognised": recognised}
                    for month_end, held, recognised in (
                        ("2025-04-30", 1152, 1070),
                        ("2025-05-31", 1160, 1075),
                        ("2025-06-30", 1141, 1060),
                        ("2025-07-31", 1150, 1064),
                        ("2025-08-31", 1130, 1049),
                        ("2025-09-30", 1104, 1021),
                    )
                ],
                "releases_by_month": [
                    {"month": month, "by_mode": dict.fromkeys(RELEASE_MODES, 0) | by_mode}
                    for month, by_mode in (
                        ("2025-04", {"sentence_served": 12, "parole": 1}),
                        ("2025-05", {"sentence_served": 8, "pardoned": 4}),
                        ("2025-06", {"sentence_served": 10, "pardoned_and_deported": 14}),
                        ("2025-07", {"sentence_served": 7, "acquitted": 1}),
                        ("2025-08", {"sentence_served": 11, "pardoned": 16}),
                        ("2025-09", released_by_mode),
                    )
                ],
            },
        },
        "differences": {
            "previous_id": "0193a5b0-0000-7000-8000-000000000000",
            "previous_as_of": "2025-08-31",
            "entered_custody": {"count": 41, "named": [{"name": LATIN_NAME}]},
            "left_custody": {"count": 66, "named": [{"name": CYRILLIC_NAME}]},
            "died": {"count": 1, "named": []},
        },
    }
