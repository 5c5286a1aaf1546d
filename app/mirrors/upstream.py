"""Another Habeas read as one of its partners: a token by a signed client assertion
(RFC 7523), then its change feed streamed page by page (NDJSON)."""

import json
import secrets
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, OKPKey, RSAKey

from app.sync.schemas import POSITION_FIELDS

FEED_PATH = "/api/v1/sync/changes"
TOKEN_PATH = "/api/v1/auth/token"  # noqa: S105 (a path, not a secret)
# The audience a Habeas token endpoint accepts in a client assertion (app/identity/router.py
# names itself so, whatever address it is reached at).
TOKEN_AUDIENCE = "https://habeas" + TOKEN_PATH
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_SECONDS = 60
# A token is renewed this long before it expires, so that no request carries a dying one.
RENEW_BEFORE_SECONDS = 30
NDJSON = "application/x-ndjson"
PAGE_LIMIT = 500
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
DEFAULT_PORTS = {"https": 443, "http": 80}

Key = ECKey | RSAKey | OKPKey


class UpstreamError(Exception):
    """The upstream could not be read; `retry` says whether trying again may help."""

    def __init__(self, message: str, *, retry: bool, token_refused: bool = False) -> None:
        super().__init__(message)
        self.retry = retry
        # The stream ended because the token was refused (it expired): go on at once
        # with a new one.
        self.token_refused = token_refused


class KeyFileError(ValueError):
    pass


def upstream_url(value: str, *, allow_http: bool = False) -> str:
    """The upstream's base address: https (plain http only to this machine, or when
    allowed), no path beyond the root, no credentials, query or fragment."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("the upstream's address is an https:// URL")
    if parts.scheme == "http" and not allow_http and parts.hostname not in LOOPBACK_HOSTS:
        raise ValueError("plain http is only for this machine (or with --allow-http)")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError("the upstream's address holds no credentials, query or fragment")
    if parts.path.strip("/"):
        raise ValueError("the upstream's address is its root, e.g. https://habeas.example.org")
    try:
        port = parts.port
        host = parts.hostname.encode("idna").decode("ascii").lower()
    except (ValueError, UnicodeError):
        raise ValueError("the upstream's address has no valid host and port") from None
    # One address for one upstream however it is written (its mirrored records and its
    # lock are the address's): a lower-case host, no default port.
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def load_key(path: Path) -> Key:
    """The client's private key: a JWK (or a JWKS holding one key) in JSON, or PEM."""
    data = path.read_bytes()
    try:
        if data.lstrip().startswith(b"{"):
            document = json.loads(data)
            if isinstance(document.get("keys"), list):
                if len(document["keys"]) != 1:
                    raise KeyFileError("the key set holds more than one key")
                document = document["keys"][0]
            key: Any = JWKRegistry.import_key(document)
        else:
            key = _pem_key(data)
    except (ValueError, TypeError, AttributeError, KeyError, JoseError):
        # Never the library's message: it may quote the key.
        raise KeyFileError("not a private key in JWK or PEM") from None
    if not isinstance(key, ECKey | RSAKey | OKPKey) or not key.is_private:
        raise KeyFileError("not a private key of type EC, RSA or OKP")
    algorithm_of(key)
    return key


def readable_by_others(path: Path) -> bool:
    """Whether the key file's mode lets its group or anyone read it."""
    return bool(path.stat().st_mode & 0o077)


def _pem_key(data: bytes) -> Key:
    for kind in ("EC", "RSA", "OKP"):
        try:
            key: Key = JWKRegistry.import_key(data, kind)  # type: ignore[assignment]
        except (ValueError, JoseError, TypeError):
            continue
        return key
    raise KeyFileError("not a PEM private key of type EC, RSA or OKP")


def algorithm_of(key: Key) -> str:
    if isinstance(key, RSAKey):
        return "PS256"
    if isinstance(key, OKPKey):
        return "EdDSA"
    curve = key.get("crv")
    if curve == "P-256":
        return "ES256"
    if curve == "P-384":
        return "ES384"
    raise KeyFileError(f"an EC key on {curve}: use P-256 or P-384")


@dataclass
class _Token:
    value: str
    expires: float


class UpstreamFeed:
    """One upstream read as one partner client."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        key: Key,
        http: httpx.AsyncClient,
        page_limit: int = PAGE_LIMIT,
    ) -> None:
        self.base_url = base_url
        self.page_limit = page_limit
        self.client_id = client_id
        self._key = key
        self._algorithm = algorithm_of(key)
        self._http = http
        self._token: _Token | None = None

    def _assertion(self) -> str:
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": TOKEN_AUDIENCE,
            "iat": now,
            "exp": now + ASSERTION_SECONDS,
            "jti": secrets.token_urlsafe(24),
        }
        header = {"alg": self._algorithm}
        if self._key.kid:
            header["kid"] = self._key.kid
        return jwt.encode(header, claims, self._key, algorithms=[self._algorithm])

    async def token(self, *, renew: bool = False) -> str:
        if (
            not renew
            and self._token is not None
            and self._token.expires - RENEW_BEFORE_SECONDS > time.monotonic()
        ):
            return self._token.value
        started = time.monotonic()
        response = await self._send(
            "POST",
            self.base_url + TOKEN_PATH,
            data={
                "grant_type": "client_credentials",
                "scope": "sync:read",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self._assertion(),
            },
        )
        if response.status_code != 200:
            raise UpstreamError(
                f"the upstream refused a token ({response.status_code}: {_oauth_error(response)})",
                retry=response.status_code >= 500 or response.status_code == 429,
            )
        try:
            body = response.json()
            self._token = _Token(str(body["access_token"]), started + float(body["expires_in"]))
        except (ValueError, TypeError, KeyError):
            raise UpstreamError("the upstream's token answer is not one", retry=True) from None
        return self._token.value

    async def _send(self, method: str, url: str, **options: Any) -> httpx.Response:
        try:
            return await self._http.request(method, url, **options)
        except httpx.HTTPError as error:
            raise UpstreamError(f"the upstream cannot be reached: {error!r}", retry=True) from None

    async def pages(self, cursor: str | None) -> AsyncGenerator[dict[str, Any], None]:
        """The feed's pages from `cursor` (none: from its start), streamed; ends when a
        stream ends (caught up, or after the pages one stream holds). A token refused at
        the start is renewed once."""
        params: dict[str, Any] = {"limit": self.page_limit}
        if cursor is not None:
            params["cursor"] = cursor
        for attempt in range(2):
            token = await self.token(renew=attempt > 0)
            request = self._http.build_request(
                "GET",
                self.base_url + FEED_PATH,
                params=params,
                headers={"Authorization": f"Bearer {token}", "Accept": NDJSON},
            )
            try:
                response = await self._http.send(request, stream=True)
            except httpx.HTTPError as error:
                raise UpstreamError(
                    f"the upstream cannot be reached: {error!r}", retry=True
                ) from None
            try:
                if response.status_code == 401 and attempt == 0:
                    continue
                if response.status_code != 200:
                    await response.aread()
                    raise UpstreamError(
                        f"the upstream's feed answered {response.status_code}: "
                        f"{_problem(response)}",
                        retry=response.status_code >= 500 or response.status_code == 429,
                    )
                if response.headers.get("content-type", "").split(";")[0].strip() != NDJSON:
                    # An upstream (or a proxy) that answers one JSON page: not the stream
                    # this pull reads page by page.
                    raise UpstreamError(
                        "the upstream's feed did not answer as a stream (application/x-ndjson)",
                        retry=False,
                    )
                async for page in _stream_pages(response):
                    if page.pop("token_refused"):
                        self._token = None
                        raise UpstreamError(
                            "the upstream ended the stream: the token was refused",
                            retry=True,
                            token_refused=True,
                        )
                    yield page
                return
            finally:
                await response.aclose()
        raise UpstreamError("the upstream refused a fresh token", retry=False)


async def _stream_pages(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The stream's pages: the items before each position line. A stream that ends with
    items and no position line after them, or with no page at all, broke off: what it
    sent after its last position line is not a page."""
    items: list[dict[str, Any]] = []
    pages = 0
    try:
        async for line in response.aiter_lines():
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise UpstreamError(
                    "the upstream sent a line that is not JSON", retry=True
                ) from None
            if not isinstance(value, dict):
                raise UpstreamError("the upstream sent a line that is not an object", retry=True)
            if "problem" in value:
                # The stream was cut (the token expired, the partner was disabled): what
                # came before its last position line stands.
                status = (
                    value["problem"].get("status")
                    if isinstance(value["problem"], Mapping)
                    else None
                )
                if status == 401:
                    yield {"token_refused": True}
                    return
                raise UpstreamError(
                    f"the upstream ended the stream: {_title(value['problem'])}",
                    retry=status is None or status >= 500 or status == 429,
                )
            if "kind" in value:
                items.append(value)
                continue
            if set(value) != set(POSITION_FIELDS):
                raise UpstreamError("the upstream sent a line that is not of its feed", retry=False)
            pages += 1
            yield {**value, "items": items, "token_refused": False}
            items = []
    except httpx.HTTPError as error:
        raise UpstreamError(f"the stream broke off: {error!r}", retry=True) from None
    if items or pages == 0:
        raise UpstreamError("the stream broke off before its position line", retry=True)


def _title(problem: Any) -> str:
    if isinstance(problem, Mapping):
        return str(problem.get("title") or problem.get("type") or "unknown")
    return "unknown"


def _problem(response: httpx.Response) -> str:
    try:
        return _title(response.json())
    except ValueError:
        return "no details"


def _oauth_error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return "no details"
    return str(body.get("error_description") or body.get("error") or "no details")


def new_key(kid: str | None = None) -> ECKey:
    """A new P-256 key pair for a mirror to register its public half with the upstream."""
    return ECKey.generate_key(
        "P-256", private=True, parameters={"kid": kid or uuid.uuid4().hex[:16]}
    )
