"""How a mirror reads an upstream's answers, line by line: what is a page, what is a stream
broken off, what is refused (these answers are made up here to be what a real upstream
sends only when something goes wrong; the pull against a real one is in test_pull*.py)."""

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc.jwk import ECKey, RSAKey

from app.mirrors.upstream import (
    NDJSON,
    KeyFileError,
    UpstreamError,
    UpstreamFeed,
    load_key,
    readable_by_others,
    upstream_url,
)

KEY = ECKey.generate_key("P-256", private=True, parameters={"kid": "k"})
ITEM = {
    "seq": 3,
    "kind": "person",
    "id": "0190e6a4-0000-7000-8000-000000000001",
    "change": "tombstone",
}
POSITION = {"next": "c1", "phase": "changes", "caught_up": False, "reset": False}


def upstream_answering(
    feed: Callable[[httpx.Request], httpx.Response], tokens: list[str] | None = None
) -> UpstreamFeed:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/auth/token"):
            if tokens is not None:
                tokens.append("asked")
            return httpx.Response(200, json={"access_token": "t", "expires_in": 600})
        return feed(request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return UpstreamFeed("https://upstream.example", "hbp_x", KEY, http)


def lines(*values: Any) -> bytes:
    return b"".join(json.dumps(value).encode() + b"\n" for value in values)


def ndjson(content: bytes) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(200, headers={"content-type": NDJSON}, content=content)


async def read_all(upstream: UpstreamFeed) -> list[dict[str, Any]]:
    return [page async for page in upstream.pages(None)]


async def test_pages_are_the_items_before_each_position_line() -> None:
    upstream = upstream_answering(ndjson(lines(ITEM, POSITION, POSITION | {"caught_up": True})))
    pages = await read_all(upstream)
    assert [len(page["items"]) for page in pages] == [1, 0]
    assert pages[0]["next"] == "c1" and pages[1]["caught_up"] is True


@pytest.mark.parametrize(
    ("content", "retry"),
    [
        # Items and then the end of the stream, no position line: the page broke off.
        (lines(ITEM), True),
        (lines(POSITION, ITEM), True),
        # An empty answer is no page.
        (b"", True),
        (b"{not json\n", True),
        # A line that is neither an item nor a position, nor a problem.
        (lines({"next": "c1", "items": []}), False),
        # The partner was disabled meanwhile: refused, not retried.
        (lines({"problem": {"status": 403, "title": "Forbidden"}}), False),
    ],
    ids=["no position", "items after the last position", "empty", "not json", "odd line", "403"],
)
async def test_a_stream_that_breaks_off_or_is_not_the_feed_is_an_error(
    content: bytes, retry: bool
) -> None:
    upstream = upstream_answering(ndjson(content))
    with pytest.raises(UpstreamError) as raised:
        await read_all(upstream)
    assert raised.value.retry is retry


async def test_pages_before_a_problem_line_stand_and_an_expired_token_is_renewed() -> None:
    tokens: list[str] = []
    expired = {"problem": {"status": 401, "title": "Unauthorized"}}
    upstream = upstream_answering(ndjson(lines(ITEM, POSITION, expired)), tokens)
    got: list[dict[str, Any]] = []

    async def read() -> None:
        async for page in upstream.pages(None):
            got.append(page)

    with pytest.raises(UpstreamError) as raised:
        await read()
    assert [len(page["items"]) for page in got] == [1]
    assert raised.value.retry and raised.value.token_refused
    await upstream.token()
    assert tokens == ["asked", "asked"]


async def test_a_plain_json_answer_is_refused_not_read_as_an_empty_page() -> None:
    page = {"items": [ITEM], **POSITION}
    upstream = upstream_answering(lambda request: httpx.Response(200, json=page))
    with pytest.raises(UpstreamError) as raised:
        await read_all(upstream)
    assert not raised.value.retry


async def test_a_refused_feed_is_retried_only_when_it_may_pass() -> None:
    for status, retry in ((503, True), (429, True), (403, False), (400, False)):
        upstream = upstream_answering(lambda request, s=status: httpx.Response(s, json={}))
        with pytest.raises(UpstreamError) as raised:
            await read_all(upstream)
        assert raised.value.retry is retry, status


def test_one_address_for_an_upstream_however_it_is_written() -> None:
    for written in (
        "https://Habeas.Example.org",
        "https://habeas.example.org:443/",
        " https://habeas.example.org ",
    ):
        assert upstream_url(written) == "https://habeas.example.org"
    assert upstream_url("https://habeas.example.org:8443") == "https://habeas.example.org:8443"
    assert upstream_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000"
    assert upstream_url("http://10.0.0.5", allow_http=True) == "http://10.0.0.5"
    for refused in (
        "http://habeas.example.org",
        "ftp://habeas.example.org",
        "https://user:pw@habeas.example.org",
        "https://habeas.example.org/api/v1",
        "https://habeas.example.org/?x=1",
        "https://habeas.example.org:99999",
        "habeas.example.org",
    ):
        with pytest.raises(ValueError, match=r"address|http"):
            upstream_url(refused)


def test_key_files(tmp_path: Path) -> None:
    jwk = tmp_path / "key.json"
    jwk.write_text(json.dumps(KEY.as_dict(private=True)))
    assert load_key(jwk).kid == "k"
    key_set = tmp_path / "keys.json"
    key_set.write_text(json.dumps({"keys": [KEY.as_dict(private=True)]}))
    assert load_key(key_set).kid == "k"
    pem = tmp_path / "key.pem"
    pem.write_bytes(RSAKey.generate_key(2048, private=True).as_pem(private=True))
    assert load_key(pem).is_private
    os.chmod(pem, 0o600)
    assert not readable_by_others(pem)
    os.chmod(pem, 0o644)
    assert readable_by_others(pem)
    refused = {
        "public.json": json.dumps(KEY.as_dict(private=False)),
        "list.json": "[]",
        "two.json": json.dumps({"keys": [KEY.as_dict(private=True)] * 2}),
        "p521.json": json.dumps(ECKey.generate_key("P-521", private=True).as_dict(private=True)),
        "junk.pem": "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
    }
    for name, content in refused.items():
        path = tmp_path / name
        path.write_text(content)
        with pytest.raises(KeyFileError):
            load_key(path)
