"""A status report's figures checked by hand (issue 14, Tests; docs/reports.md, "What
counts"): a small fixture made through the API, September 2025 reported on, the expected
numbers worked out below and written in the test.

The fixture (all case files in BY unless said; pretrial custody unless said):

- p1..p5 pardoned on 11 September in one collective event and expelled to Lithuania; p2 is
  Lithuanian, p3 German and Polish, p4 German: 5 releases "pardoned and deported", 5
  deportations to LT, foreign releases LT 1, DE 2, PL 1; the event: 5 case files, 3
  foreign nationals.
- p6 held since 2022; her release on 20 September is reported unconfirmed (a claim: apart,
  still held); recognised on 10 September (a new recognition in the period).
- p7 died in custody on 5 September; p8 died in "2023" (a year: counts from 1 January);
  p9 died in "2019-10", before the baseline.
- p10 released on 15 September (sentence served) — corrected after the first report: the
  release was on 2 October.
- p11 charged at liberty since January, detained on 3 September (a new detention) — the
  detention retracted after the first report.
- p12 with two open case files (detained 2024; detained and sentenced 2025): held once,
  as sentenced (the case file whose state was set last).
- p13 recognised for case file 1, released in 2021, re-arrested in 2024 (case file 2, not
  covered): held, not counted as recognised.
- p14 sentenced in 2021, recognised in 2022: held, recognised.
- p15 under house arrest (not counted as held by default): prosecuted at liberty.
- p16 held in Russia: outside a BY report.
- p17 detained in June, sentenced to a fine on 25 September: a sentence (no term) and a
  release by a non-custodial sentence; prosecuted at liberty.
- p18 (Ukrainian) detained in February, sentenced to 30 months on 18 September.
"""

from typing import Any

import httpx
from fastapi import FastAPI

from tests.factories import API, amnesty, event
from tests.reports.recompute import RELEASE_MODES
from tests.reports.reporting import (
    case,
    events_of,
    generate,
    move,
    on_event,
    person,
    recognise,
    settle,
)

SEPTEMBER = {"as_of": "2025-09-30", "period": {"from": "2025-09-01", "to": "2025-09-30"}}


def _sentenced(day: str, months: int | None, sentence: str = "imprisonment") -> dict[str, Any]:
    details: dict[str, Any] = {"sentence_type": sentence}
    if months is not None:
        details["term_months"] = months
    return event("sentenced", day, details=details)


async def _fixture(client: httpx.AsyncClient) -> dict[str, str]:
    """Every case file the corrections need, by name."""
    batch = []
    for citizenships in (["BY"], ["LT"], ["DE", "PL"], ["DE"]):
        batch.append(
            await case(
                client,
                await person(client, *citizenships),
                event("detained", "2021-01-10"),
                _sentenced("2021-06-01", 60),
            )
        )
    batch.append(await case(client, await person(client), event("detained", "2024-11-02")))
    expelled = await client.post(
        f"{API}/collective-events",
        json=amnesty(
            batch,
            title="Pardoned and expelled to Lithuania (synthetic)",
            kind="pardon",
            to_status="pardoned",
            details={},
            effective_date="2025-09-11",
            expelled_to="LT",
        ),
    )
    assert expelled.status_code == 201, expelled.text

    p6 = await person(client)
    claimed = await case(client, p6, event("detained", "2022-03-01"))
    claim = await move(client, claimed, "released", "2025-09-20", confidence="unconfirmed")
    assert claim.status_code == 201, claim.text
    assert (await recognise(client, p6, "2025-09-10")).status_code == 201

    died = await case(
        client,
        await person(client),
        event("detained", "2021-05-01"),
        _sentenced("2021-12-01", 96),
        event("died_in_custody", "2025-09-05"),
    )
    await case(
        client, await person(client), event("detained", "2020-06"), event("died_in_custody", "2023")
    )
    await case(
        client,
        await person(client),
        event("detained", "2019"),
        event("died_in_custody", "2019-10"),
    )

    released = await case(
        client,
        await person(client),
        event("detained", "2023-05-01"),
        _sentenced("2023-10-01", 24),
        event("released", "2025-09-15", details={"release_reason": "sentence_served"}),
    )
    detained = await case(
        client,
        await person(client),
        event("charged", "2025-01-10", details={"situation": "travel_ban"}),
        event("detained", "2025-09-03"),
    )

    p12 = await person(client)
    await case(client, p12, event("detained", "2024-02-01"))
    await case(client, p12, event("detained", "2024-05-01"), _sentenced("2025-03-01", 40))

    p13 = await person(client)
    first_arrest = await case(client, p13, event("detained", "2020-08-10"))
    assert (await recognise(client, p13, "2020-10-01")).status_code == 201
    assert (await move(client, first_arrest, "released", "2021-06-01")).status_code == 201
    rearrest = await case(client, p13, event("detained", "2024-03-01"))

    p14 = await person(client)
    await case(client, p14, event("detained", "2021-02-01"), _sentenced("2021-09-01", 84))
    assert (await recognise(client, p14, "2022-03-01")).status_code == 201

    await case(
        client,
        await person(client),
        event("detained", "2024-01-01"),
        deprivation_type="house_arrest",
    )
    await case(
        client, await person(client, "RU"), event("detained", "2023-01-01"), jurisdiction="RU"
    )
    await case(
        client,
        await person(client),
        event("detained", "2025-06-01"),
        _sentenced("2025-09-25", None, "fine"),
    )
    await case(
        client,
        await person(client, "UA"),
        event("detained", "2025-02-01"),
        _sentenced("2025-09-18", 30),
    )
    return {
        "died": died,
        "released": released,
        "detained": detained,
        "rearrest": rearrest,
        "collective": expelled.json()["id"],
        "claimed_person": p6,
    }


def _modes(**counts: int) -> dict[str, int]:
    return {mode: counts.get(mode, 0) for mode in RELEASE_MODES}


async def test_september_by_hand_and_as_known_at_the_first_generation(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    made = await _fixture(client)
    await settle(app)
    first = await generate(client, **SEPTEMBER)
    figures = first["figures"]

    held = figures["held"]
    # p6, p11, p12 (once), p13 (re-arrested), p14, p18.
    assert held["total"] == 6
    # p6 (recognised in September) and p14; not p13, whose held case file is not covered.
    assert held["recognised"] == 2
    # p6, p11, p13 detained; p12 (case file B), p14, p18 sentenced.
    assert held["by_status"] == {"detained": 3, "sentenced": 3}
    assert figures["at_liberty"]["prosecuted"] == 2  # p15 (house arrest), p17 (a fine)
    assert figures["breakdowns"]["foreign_by_citizenship"].get("UA") == 1
    assert sum(figures["breakdowns"]["foreign_by_citizenship"].values()) == 1

    period = figures["period"]
    assert period["new_detentions"] == 1  # p11
    assert period["new_recognitions"] == 1  # p6
    sentences = period["sentences"]
    assert sentences["total"] == 2
    assert {k: v for k, v in sentences["by_type"].items() if v} == {"fine": 1, "imprisonment": 1}
    assert sentences["by_term_band"] == {
        "under_1y": 0, "1_3y": 1, "3_5y": 0, "5_10y": 0, "10y_plus": 0, "no_term": 1,
    }  # fmt: skip
    assert period["released"]["total"] == 7
    assert period["released"]["by_mode"] == _modes(
        pardoned_and_deported=5, sentence_served=1, non_custodial_sentence=1
    )
    assert period["deported"]["total"] == 5
    assert {k: v for k, v in period["deported"]["by_destination"].items() if v} == {"LT": 5}
    assert {k: v for k, v in period["released_foreign_by_citizenship"].items() if v} == {
        "LT": 1,
        "DE": 2,
        "PL": 1,
    }
    assert period["deaths_in_custody"] == 1  # p7

    cumulative = figures["cumulative"]
    # p7 (September 2025) and p8 ("2023"); p9 died before the baseline.
    assert cumulative["deaths_in_custody_since_baseline"] == 2
    # Every case file that became held since 2020, p11's too: neither p9 (2019) nor p15
    # (house arrest) nor p16 (RU).
    assert cumulative["detentions_since_baseline"] == 17
    # The batch (5), p10, p13's first case file, p17.
    assert cumulative["releases_since_baseline"] == 8

    unconfirmed = figures["claims"]["unconfirmed"]
    assert unconfirmed["count"] == 1
    assert {k: v for k, v in unconfirmed["by_status"].items() if v} == {"released": 1}
    (item,) = unconfirmed["items"]
    assert (item["to_status"], item["effective_date"]) == ("released", "2025-09-20")
    # p6's family consented to publication: named by a public spelling.
    claimed_person = (await client.get(f"{API}/persons/{made['claimed_person']}")).json()
    assert item["name"] in {n["value"] for n in claimed_person["names"]}

    (collective,) = figures["by_collective_event"]
    assert collective["id"] == made["collective"]
    assert (collective["kind"], collective["to_status"], collective["expelled_to"]) == (
        "pardon",
        "pardoned",
        "LT",
    )
    assert collective["effective_date"] == "2025-09-11"
    assert (collective["case_files"], collective["foreign_nationals"]) == (5, 3)

    # The chart's last point is D; its month's releases are September's.
    assert figures["series"]["held_by_month"][-1] == {
        "month_end": "2025-09-30",
        "held": 6,
        "recognised": 2,
    }
    assert figures["series"]["releases_by_month"][-1]["month"] == "2025-09"
    assert {
        k: v for k, v in figures["series"]["releases_by_month"][-1]["by_mode"].items() if v
    } == {
        "pardoned_and_deported": 5,
        "sentence_served": 1,
        "non_custodial_sentence": 1,
    }

    read = await client.get(f"{API}/reports/{first['id']}")
    assert read.status_code == 200, read.text
    assert read.json()["figures"] == figures
    assert read.json()["content_sha256"] == first["content_sha256"]

    # News after the first report, about September: p10 was released on 2 October, not
    # on 15 September; p11's detention was reported by mistake.
    release = next(
        e for e in await events_of(client, made["released"]) if e["to_status"] == "released"
    )
    corrected = await on_event(
        client,
        made["released"],
        release["id"],
        "supersession",
        {
            "reason": "Released on 2 October",
            "event": event("released", "2025-10-02", details={"release_reason": "sentence_served"}),
        },
    )
    assert corrected.status_code == 201, corrected.text
    detention = next(
        e for e in await events_of(client, made["detained"]) if e["to_status"] == "detained"
    )
    retracted = await on_event(
        client, made["detained"], detention["id"], "retraction", {"reason": "Reported by mistake"}
    )
    assert retracted.status_code == 201, retracted.text
    await settle(app)

    again = await generate(client, **SEPTEMBER, as_known_at=first["parameters"]["as_known_at"])
    assert again["id"] != first["id"]
    assert again["parameters"] == first["parameters"]
    assert again["figures"] == first["figures"]
    assert again["content_sha256"] == first["content_sha256"]

    now = (await generate(client, **SEPTEMBER))["figures"]
    assert now["held"]["total"] == 6  # p10 in, p11 out
    assert now["held"]["recognised"] == 2
    assert now["held"]["by_status"] == {"detained": 2, "sentenced": 4}
    assert now["at_liberty"]["prosecuted"] == 3  # p11 at liberty again
    assert now["period"]["new_detentions"] == 0
    assert now["period"]["released"]["total"] == 6
    assert now["period"]["released"]["by_mode"] == _modes(
        pardoned_and_deported=5, non_custodial_sentence=1
    )
    assert now["cumulative"]["detentions_since_baseline"] == 16
    assert now["cumulative"]["releases_since_baseline"] == 7
    for unchanged in ("deported", "released_foreign_by_citizenship", "deaths_in_custody"):
        assert now["period"][unchanged] == period[unchanged]
    assert now["cumulative"]["deaths_in_custody_since_baseline"] == 2
    assert now["claims"]["unconfirmed"]["count"] == 1
    assert now["by_collective_event"] == figures["by_collective_event"]


async def test_held_deprivation_types_decide_who_is_held(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """House arrest is left out unless asked for."""
    await case(
        client,
        await person(client),
        event("detained", "2024-01-01"),
        deprivation_type="house_arrest",
    )
    await case(client, await person(client), event("detained", "2024-01-01"))
    await settle(app)
    default = (await generate(client, **SEPTEMBER))["figures"]
    assert (default["held"]["total"], default["at_liberty"]["prosecuted"]) == (1, 1)
    asked = await generate(
        client, **SEPTEMBER, held_deprivation_types=["pretrial_custody", "house_arrest"]
    )
    assert (asked["figures"]["held"]["total"], asked["figures"]["at_liberty"]["prosecuted"]) == (
        2,
        0,
    )
    assert sorted(asked["parameters"]["held_deprivation_types"]) == [
        "house_arrest",
        "pretrial_custody",
    ]


async def test_recognition_counts_the_held_case_files_it_covers(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """Each held case file's recognition is its own latest decision by D. The doc says
    politically_persecuted counts "likewise"; DESIGN §2 defines it as persecuted but not
    recognised, and the report counts it so: a person recognised for one held case file and
    persecuted for another is counted as recognised only."""
    both = await person(client)
    first = await case(client, both, event("detained", "2024-01-01"))
    second = await case(client, both, event("detained", "2024-06-01"))
    assert (await recognise(client, both, "2024-07-01", case_file_ids=[first])).status_code == 201
    persecuted = {"status": "politically_persecuted", "case_file_ids": [second]}
    assert (await recognise(client, both, "2024-08-01", **persecuted)).status_code == 201
    only = await person(client)
    alone = await case(client, only, event("detained", "2024-02-01"))
    persecuted = {"status": "politically_persecuted", "case_file_ids": [alone]}
    assert (await recognise(client, only, "2024-03-01", **persecuted)).status_code == 201
    # Recognised after D: not yet on D.
    later = await person(client)
    await case(client, later, event("detained", "2024-02-01"))
    assert (await recognise(client, later, "2025-10-01")).status_code == 201
    await settle(app)
    held = (await generate(client, **SEPTEMBER))["figures"]["held"]
    assert (held["total"], held["recognised"], held["politically_persecuted"]) == (3, 1, 1)
    summer = (
        await generate(
            client,
            as_of="2024-07-15",
            period={"from": "2024-07-01", "to": "2024-07-15"},
        )
    )["figures"]
    assert (summer["held"]["recognised"], summer["held"]["politically_persecuted"]) == (1, 1)
    assert summer["period"]["new_recognitions"] == 1


async def test_as_known_at_also_ignores_later_changes_to_persons_and_case_files(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """docs/reports.md: asking again "as known at" the stored knowledge time gives the same
    figures and the same hash, "whatever was recorded, corrected or retracted since". A
    person's citizenships and a case file's deprivation type, jurisdiction and charges are
    corrected too, by PATCH, after a report has been published."""
    foreigner = await person(client, "LT")
    expelled = await case(client, foreigner, event("detained", "2024-01-01"))
    made = await client.post(
        f"{API}/collective-events",
        json=amnesty(
            [expelled],
            kind="pardon",
            to_status="pardoned",
            details={},
            effective_date="2025-09-11",
            expelled_to="LT",
        ),
    )
    assert made.status_code == 201, made.text
    held = await case(client, await person(client), event("detained", "2024-01-01"))
    await settle(app)
    first = await generate(client, **SEPTEMBER)
    assert first["figures"]["held"]["total"] == 1
    assert first["figures"]["period"]["released_foreign_by_citizenship"].get("LT") == 1

    person_url = f"{API}/persons/{foreigner}"
    etag = (await client.get(person_url)).headers["etag"]
    changed = await client.patch(
        person_url, json={"citizenships": ["BY"]}, headers={"If-Match": etag}
    )
    assert changed.status_code == 200, changed.text
    case_url = f"{API}/cases/{held}"
    etag = (await client.get(case_url)).headers["etag"]
    changed = await client.patch(
        case_url, json={"deprivation_type": "house_arrest"}, headers={"If-Match": etag}
    )
    assert changed.status_code == 200, changed.text
    await settle(app)

    now = (await generate(client, **SEPTEMBER))["figures"]
    assert now["held"]["total"] == 0
    assert sum(now["period"]["released_foreign_by_citizenship"].values()) == 0
    again = await generate(client, **SEPTEMBER, as_known_at=first["parameters"]["as_known_at"])
    assert again["figures"] == first["figures"]
    assert again["content_sha256"] == first["content_sha256"]


async def test_release_modes_by_hand(client: httpx.AsyncClient, app: FastAPI) -> None:
    """Each way out of custody, in September 2025 (all held since 1 January):
    a pardoned on the 20th and deported on 5 October; b deported on the 12th without a
    pardon; c released pending trial on the 3rd; d given a suspended sentence on the 4th;
    e acquitted on the 5th, then deported on the 6th (not a second release); f convicted in
    absentia, never held; g released pending trial on the 2nd and detained again on the
    20th."""
    since = event("detained", "2025-01-01")

    async def history(*steps: dict[str, Any]) -> None:
        await case(client, await person(client), *steps)

    await history(
        since,
        event("pardoned", "2025-09-20"),
        event("deported", "2025-10-05", details={"destination_country": "LT"}),
    )
    await history(since, event("deported", "2025-09-12", details={"destination_country": "DE"}))
    await history(since, event("charged", "2025-09-03", details={"situation": "other"}))
    await history(since, _sentenced("2025-09-04", None, "suspended"))
    await history(
        since,
        event("released", "2025-09-05", details={"release_reason": "acquitted"}),
        event("deported", "2025-09-06", details={"destination_country": "PL"}),
    )
    await history(
        event("charged", "2024-01-01", details={"situation": "abroad_tried_in_absentia"}),
        event(
            "sentenced",
            "2025-09-07",
            details={"sentence_type": "imprisonment", "term_months": 96, "in_absentia": True},
        ),
    )
    await history(
        since,
        event("charged", "2025-09-02", details={"situation": "released_pending_trial"}),
        event("detained", "2025-09-20"),
    )
    await settle(app)

    september = (await generate(client, **SEPTEMBER))["figures"]
    period = september["period"]
    assert period["released"]["by_mode"] == _modes(
        pardoned=1,
        deported_without_pardon=1,
        released_pending_trial=2,
        non_custodial_sentence=1,
        acquitted=1,
    )
    assert period["released"]["total"] == 6
    assert {k: v for k, v in period["deported"]["by_destination"].items() if v} == {
        "DE": 1,
        "PL": 1,
    }
    assert period["new_detentions"] == 1  # g
    assert period["sentences"]["total"] == 2
    assert {k: v for k, v in period["sentences"]["by_term_band"].items() if v} == {
        "no_term": 1,
        "5_10y": 1,
    }
    assert september["held"]["total"] == 1  # g
    assert september["at_liberty"]["prosecuted"] == 3  # c, d, f

    autumn = (
        await generate(
            client, as_of="2025-10-31", period={"from": "2025-09-01", "to": "2025-10-31"}
        )
    )["figures"]["period"]
    # a's pardon is followed by a deportation dated by the period's end.
    assert autumn["released"]["by_mode"]["pardoned_and_deported"] == 1
    assert autumn["released"]["by_mode"]["pardoned"] == 0
    assert autumn["released"]["total"] == 6
    october = (
        await generate(
            client, as_of="2025-10-31", period={"from": "2025-10-01", "to": "2025-10-31"}
        )
    )["figures"]["period"]
    # The deportation of someone already at liberty is no release.
    assert (october["released"]["total"], october["deported"]["total"]) == (0, 1)
