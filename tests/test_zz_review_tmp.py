"""Throwaway security-review probes (to be deleted)."""

import asyncio
import base64
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.access.principal import Role
from tests.auth import SignedIn, api_client, create_account, create_partner, partner_token
from tests.factories import API, case_body, event, person_body

SignIn = Callable[..., Awaitable[SignedIn]]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# ---- sign-in throttle races -----------------------------------------------------------

async def test_concurrent_wrong_logins_exceed_account_limit(app: FastAPI, clean_tables: None) -> None:
    account = await create_account(app, Role.caseworker)
    async with api_client(app) as c:
        async def attempt(i: int) -> int:
            r = await c.post(
                f"{API}/auth/login",
                json={"username": account.username, "password": f"wrong-{i}", "code": "000000"},
            )
            return r.status_code

        codes = await asyncio.gather(*(attempt(i) for i in range(15)))
    print("\nconcurrent wrong logins (limit 5):", sorted(codes))
    # With a sound throttle, at most 5 would be evaluated (401), the rest 429.
    assert codes.count(401) > 5


async def test_address_throttle_is_global_behind_proxy(app: FastAPI, clean_tables: None) -> None:
    account = await create_account(app, Role.coordinator)
    async with api_client(app) as c:
        for i in range(20):
            await c.post(
                f"{API}/auth/login",
                json={"username": f"nobody{i}", "password": "x", "code": "000000"},
            )
        r = await c.post(
            f"{API}/auth/login",
            json={"username": account.username, "password": account.password, "code": account.code()},
        )
    print("\nlegit login after 20 failures on other names from same address:", r.status_code, r.headers.get("retry-after"))
    assert r.status_code == 429


async def test_concurrent_logins_same_totp(app: FastAPI, clean_tables: None) -> None:
    account = await create_account(app, Role.coordinator)
    async with api_client(app) as c:
        body = {"username": account.username, "password": account.password, "code": account.code()}
        rs = await asyncio.gather(*(c.post(f"{API}/auth/login", json=body) for _ in range(5)))
    codes = [r.status_code for r in rs]
    print("\nconcurrent logins with the same TOTP code:", codes)
    assert codes.count(200) == 1


async def test_concurrent_refresh(app: FastAPI, sign_in_as: SignIn) -> None:
    signed = await sign_in_as(Role.coordinator)
    rt = signed.tokens["refresh_token"]
    async with api_client(app) as c:
        rs = await asyncio.gather(
            *(c.post(f"{API}/auth/refresh", json={"refresh_token": rt}) for _ in range(3))
        )
        codes = [r.status_code for r in rs]
        print("\nconcurrent refresh:", codes)
        winners = [r for r in rs if r.status_code == 200]
        for w in winners:
            at = w.json()["access_token"]
            me = await c.get(f"{API}/cases", headers={"Authorization": f"Bearer {at}"})
            print("winner's access token after reuse detected:", me.status_code)
            assert me.status_code == 401


# ---- field tiers ---------------------------------------------------------------------------

def _person_with_private_name() -> dict[str, Any]:
    return person_body(
        names=[
            *person_body()["names"],
            {"value": "Tajny Psieudanim", "script": "Latn", "kind": "hidden", "is_public": False},
        ]
    )


async def test_private_names_reach_restricted_partner_and_analyst(
    app: FastAPI, sign_in_as: SignIn
) -> None:
    coord = (await sign_in_as(Role.coordinator)).client
    analyst = (await sign_in_as(Role.analyst)).client
    person = (await coord.post(f"{API}/persons", json=_person_with_private_name())).json()
    case = await coord.post(f"{API}/cases", json=case_body(person["id"]))
    assert case.status_code == 201
    partner, secret = await create_partner(
        app,
        scopes=["sync:read"],
        agreement={"jurisdiction": "BY", "recognised_only": False, "max_tier": "restricted"},
    )
    async with api_client(app) as anon:
        token = await partner_token(anon, partner.client_id, secret)
        r = await anon.get(f"{API}/persons/{person['id']}", headers={"Authorization": f"Bearer {token}"})
        names = [n["value"] for n in r.json()["names"]]
        print("\npartner(restricted) sees names:", names)
        s = await anon.get(f"{API}/persons", params={"q": "Psieudanim"}, headers={"Authorization": f"Bearer {token}"})
        print("partner(restricted) search by private name hits:", len(s.json()["items"]))
    a = await analyst.get(f"{API}/persons/{person['id']}")
    print("analyst sees names:", [n["value"] for n in a.json()["names"]])
    assert "Tajny Psieudanim" in names


async def test_partner_public_gets_recognition_internal_fields(
    app: FastAPI, sign_in_as: SignIn
) -> None:
    coord = await sign_in_as(Role.coordinator)
    person = (await coord.client.post(f"{API}/persons", json=person_body())).json()
    assert (await coord.client.post(f"{API}/cases", json=case_body(person["id"]))).status_code == 201
    src = await coord.client.post(
        f"{API}/sources",
        json={"publisher": "Viasna", "title": "t", "reliability": "B", "credibility": 2,
              "is_public": False, "witness": "cellmate X"},
    )
    assert src.status_code == 201, src.text
    d = await coord.client.post(
        f"{API}/persons/{person['id']}/recognition",
        json={"status": "political_prisoner", "criteria": ["G3.1a"], "decided_on": "2022-01-10",
              "rationale": "internal: informant says ...", "source_ids": [src.json()["id"]]},
        headers={"If-Match": '"0"'},
    )
    assert d.status_code == 201, d.text
    partner, secret = await create_partner(
        app, scopes=["sync:read"], agreement={"jurisdiction": "BY", "max_tier": "public"}
    )
    async with api_client(app) as anon:
        token = await partner_token(anon, partner.client_id, secret)
        r = await anon.get(f"{API}/persons/{person['id']}/recognition",
                           headers={"Authorization": f"Bearer {token}"})
        print("\npartner(public) recognition:", r.status_code, json.dumps(r.json()["current"]))
        h = await anon.get(f"{API}/cases?person_id={person['id']}", headers={"Authorization": f"Bearer {token}"})
        case_id = h.json()["items"][0]["id"]
        ev = await anon.get(f"{API}/cases/{case_id}/status-events", headers={"Authorization": f"Bearer {token}"})
        print("partner(public) status event keys:", sorted(ev.json()["events"][0]))
    assert r.json()["current"]["decided_by"] == str(coord.account.id)


# ---- write paths -----------------------------------------------------------------------------

async def test_caseworker_can_declassify_high_case(app: FastAPI, sign_in_as: SignIn) -> None:
    coord = (await sign_in_as(Role.coordinator)).client
    cw = await sign_in_as(Role.caseworker)
    analyst = (await sign_in_as(Role.analyst)).client
    person = (await coord.post(f"{API}/persons", json=person_body())).json()
    case = (await coord.post(
        f"{API}/cases",
        json=case_body(person["id"], confidentiality="high", jurisdiction="RU",
                       assigned_caseworkers=[str(cw.account.id)]),
    )).json()
    assert (await analyst.get(f"{API}/cases/{case['id']}")).status_code == 404
    r = await cw.client.patch(
        f"{API}/cases/{case['id']}",
        json={"confidentiality": "normal", "jurisdiction": "BY"},
        headers={"If-Match": f'"{case["version"]}"'},
    )
    print("\ncaseworker PATCH confidentiality high->normal:", r.status_code)
    after = await analyst.get(f"{API}/cases/{case['id']}")
    print("analyst read after:", after.status_code)
    assert r.status_code == 200 and after.status_code == 200


async def test_idempotent_replay_after_access_lost(app: FastAPI, sign_in_as: SignIn) -> None:
    coord = (await sign_in_as(Role.coordinator)).client
    cw = await sign_in_as(Role.caseworker)
    person = (await coord.post(f"{API}/persons", json=person_body())).json()
    case = (await coord.post(
        f"{API}/cases", json=case_body(person["id"], assigned_caseworkers=[str(cw.account.id)])
    )).json()
    body = event("sentenced", "2022-03-01", note="secret note")
    headers = {"If-Match": '"1"', "Idempotency-Key": "k-1"}
    first = await cw.client.post(f"{API}/cases/{case['id']}/status-events", json=body, headers=headers)
    assert first.status_code == 201, first.text
    un = await coord.patch(
        f"{API}/cases/{case['id']}",
        json={"assigned_caseworkers": [], "confidentiality": "high"},
        headers={"If-Match": '"2"'},
    )
    assert un.status_code == 200, un.text
    assert (await cw.client.get(f"{API}/cases/{case['id']}")).status_code == 404
    again = await cw.client.post(f"{API}/cases/{case['id']}/status-events", json=body, headers=headers)
    print("\nreplay after losing access:", again.status_code, again.headers.get("idempotent-replayed"))
    assert again.status_code == 201


async def test_collective_count_reveals_hidden_cases(app: FastAPI, sign_in_as: SignIn) -> None:
    coord = (await sign_in_as(Role.coordinator)).client
    analyst = (await sign_in_as(Role.analyst)).client
    ids = []
    for conf in ("normal", "high"):
        p = (await coord.post(f"{API}/persons", json=person_body())).json()
        ids.append((await coord.post(f"{API}/cases", json=case_body(p["id"], confidentiality=conf))).json()["id"])
    ce = await coord.post(
        f"{API}/collective-events",
        json={"title": "Pardon", "kind": "pardon", "to_status": "pardoned", "confidence": "confirmed",
              "effective_date": "2023-01-05", "case_file_ids": ids},
    )
    assert ce.status_code == 201, ce.text
    r = await analyst.get(f"{API}/collective-events/{ce.json()['id']}")
    print("\nanalyst collective: count", r.json()["case_file_count"], "results", len(r.json()["results"]))
    assert r.json()["case_file_count"] > len(r.json()["results"])


# ---- bad input -> 5xx? ---------------------------------------------------------------------

@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer " + b64(b"[" * 6000) + ".e30.x",
        "Bearer " + b64(b'{"alg":"ES256"}') + "." + b64(b"[" * 6000) + ".x",
        "Bearer " + b64(b'{"alg":"ES256","typ":"at+jwt","kid":1}') + "." + b64(b'{"iss":"habeas"}') + ".x",
        "Bearer " + b64(b'{"alg":"ES256","typ":"at+jwt","kid":"k"}') + "." + b64(b'{"iss":"habeas"}') + ".x",
        "Bearer " + b64(b'{"alg":"ES256","typ":["at+jwt"],"kid":"k"}') + "." + b64(b'{"iss":"habeas"}') + ".x",
        "Bearer " + b64(b'{"alg":"ES256","typ":"at+jwt","kid":"k"}') + "." + b64(b'{"iss":["habeas"]}') + ".x",
        "Bearer " + b64(b'{"alg":"ES256","typ":"at+jwt","kid":"k"}') + "." + b64(b'{"iss":{"a":1}}') + ".x",
        "Bearer a.b",
        "Bearer ....",
        "Bearer " + "a" * 20000,
        "Bearer \u00e9.\u00e9.\u00e9",
        "Basic abc",
        "Bearer",
    ],
)
async def test_odd_authorization_headers(anonymous: httpx.AsyncClient, authorization: str) -> None:
    r = await anonymous.get(f"{API}/cases", headers={"Authorization": authorization.encode("utf-8")})
    assert r.status_code < 500, (authorization[:60], r.status_code, r.text)


@pytest.mark.parametrize(
    ("form", "auth"),
    [
        ("grant_type=client_credentials", None),
        ("grant_type=client_credentials&client_id=hbp_x&client_secret=y", None),
        ("grant_type=password&client_id=hbp_x&client_secret=y", None),
        ("grant_type=client_credentials&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=a.b.c", None),
        ("grant_type=client_credentials&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=" + b64(b'{"alg":"ES256"}') + "." + b64(b'{"sub":"hbp_x","iss":"hbp_x"}') + ".sig", None),
        ("grant_type=client_credentials&client_assertion=" + b64(b'{"alg":"ES256"}') + "." + b64(b'{"sub":123}') + ".sig", None),
        ("grant_type=client_credentials&scope=%00%ff", None),
        ("grant_type=client_credentials", "Basic !!!!"),
        ("grant_type=client_credentials", "Basic " + base64.b64encode(b"\xff\xfe:x").decode()),
        ("grant_type=client_credentials", "Basic " + base64.b64encode(b"nocolon").decode()),
        ("grant_type=client_credentials", "Bearer x"),
        ("%ff%fe=1", None),
        ("a=" + "b" * 9000, None),
    ],
)
async def test_token_endpoint_bad_input(anonymous: httpx.AsyncClient, form: str, auth: str | None) -> None:
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if auth:
        headers["Authorization"] = auth
    r = await anonymous.post(f"{API}/auth/token", content=form.encode(), headers=headers)
    assert r.status_code < 500, (form[:80], r.status_code, r.text)


async def test_token_endpoint_bad_input_known_partner(app: FastAPI, clean_tables: None) -> None:
    partner, secret = await create_partner(app, scopes=["sync:read"], agreement={"jurisdiction": "BY"})
    cid = partner.client_id
    forms = [
        f"grant_type=client_credentials&client_id={cid}&client_secret=",
        f"grant_type=client_credentials&client_id={cid}",
        f"grant_type=client_credentials&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion="
        + b64(b'{"alg":"ES256","kid":"x"}') + "." + b64(json.dumps({"sub": cid, "iss": cid}).encode()) + ".sig",
        f"grant_type=client_credentials&client_id={cid}&client_secret={secret}&scope=sync:write",
        f"grant_type=client_credentials&client_id={cid}&client_secret={secret}&scope=" + "a" * 5000,
        f"grant_type=client_credentials&client_id={cid}&client_secret={secret}&scope=%00",
    ]
    async with api_client(app) as c:
        for form in forms:
            r = await c.post(f"{API}/auth/token", content=form.encode(),
                             headers={"content-type": "application/x-www-form-urlencoded"})
            print("\n", form[:90], "->", r.status_code, r.text[:120])
            assert r.status_code < 500


async def test_caseworker_self_assigns_to_any_person(app: FastAPI, sign_in_as: SignIn) -> None:
    coord = (await sign_in_as(Role.coordinator)).client
    other = await sign_in_as(Role.caseworker)
    cw = await sign_in_as(Role.caseworker)
    body = person_body(address="SECRET ADDRESS 7", relatives=[{"name": "Sister S", "relation": "sister"}])
    person = (await coord.post(f"{API}/persons", json=body)).json()
    hi = await coord.post(f"{API}/cases", json=case_body(person["id"], confidentiality="high",
                                                         assigned_caseworkers=[str(other.account.id)]))
    assert hi.status_code == 201
    before = await cw.client.get(f"{API}/persons/{person['id']}")
    print("\nbefore: caseworker sees address?", "address" in before.json(), before.status_code)
    made = await cw.client.post(f"{API}/cases", json=case_body(person["id"]))
    print("caseworker opens own case on that person:", made.status_code)
    after = await cw.client.get(f"{API}/persons/{person['id']}")
    print("after: address:", after.json().get("address"), "relatives:", after.json().get("relatives"))
    assert after.json().get("address") == "SECRET ADDRESS 7"
