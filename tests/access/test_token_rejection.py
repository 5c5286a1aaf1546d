"""Credentials that no longer hold, or were never well formed, are refused as such."""

import os
import time
import uuid
from pathlib import Path

import httpx
import pytest

from app.core.config import Settings
from app.core.crypto import RELOAD_CHECK_SECONDS, new_signing_key, signing_key_ring, write_key_file
from app.core.errors import Unauthenticated
from app.identity.tokens import AccessTokens
from tests.factories import API


def test_a_cached_token_is_dropped_when_its_key_leaves_the_ring(tmp_path: Path) -> None:
    first, second = new_signing_key("k1"), new_signing_key("k2")
    key_file = tmp_path / "jwt.json"
    write_key_file(key_file, {"active": "k1", "keys": {"k1": first, "k2": second}})
    settings = Settings(_env_file=None, jwt_key_file=key_file)
    tokens = AccessTokens(settings, signing_key_ring(settings))
    token = tokens.issue(uuid.uuid4(), 60, client_id="habeas").token
    assert tokens.verify(token)["client_id"] == "habeas"  # verified once, now cached
    write_key_file(key_file, {"active": "k2", "keys": {"k2": second}})
    os.utime(key_file, (1, 1))  # another modification time, even within one clock tick
    time.sleep(RELOAD_CHECK_SECONDS + 0.1)  # the ring's next look at its file is due
    with pytest.raises(Unauthenticated):
        tokens.verify(token)


async def test_a_client_id_with_a_nul_byte_is_an_oauth_error_not_a_500(
    anonymous: httpx.AsyncClient,
) -> None:
    # Found by the fuzz test: the id went to the database, which refuses NUL in text.
    for form in (
        "grant_type=client_credentials&client_id=hbp_%00&client_secret=x",
        "grant_type=client_credentials&client_id=a%00b&client_secret=x",
    ):
        response = await anonymous.post(
            f"{API}/auth/token",
            content=form.encode(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        # The one answer for a client that fails to authenticate (RFC 6749 §5.2).
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "invalid_client"
