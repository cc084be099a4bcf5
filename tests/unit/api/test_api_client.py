"""KsefClient's own logic around the SDK: the one retry after a 401, missing token."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from ksef_client import models as sdk
from ksef_client.exceptions import KsefApiError as SdkApiError

from pipeline.ksef_api import KsefAuthError, KsefClient, emulator

NIP = "5265877635"
STATUS = {"status": {"code": 100, "description": "Sesja otwarta"},
          "dateCreated": "2026-03-02T12:00:00Z", "dateUpdated": "2026-03-02T12:00:01Z"}


class FakeAuth:
    def __init__(self) -> None:
        self.tokens = ["stale", "fresh"]
        self.invalidated: list[str] = []

    async def access_token(self) -> str:
        return self.tokens[0]

    def invalidate(self, token: str) -> None:
        self.invalidated.append(token)
        self.tokens.remove(token)


@pytest.fixture
async def client() -> AsyncIterator[KsefClient]:
    # port 9 (discard) is never contacted: every SDK call below is replaced
    async with KsefClient(emulator("http://127.0.0.1:9"), NIP, "token") as made:
        yield made


def patch(client: KsefClient, refuse: dict[str, int], seen: list[str]) -> FakeAuth:
    """Fake the token holder and `GET /sessions/{ref}`, which refuses the given tokens."""
    auth = FakeAuth()

    async def get_session_status(reference: str, access_token: str) -> object:
        seen.append(access_token)
        if access_token in refuse:
            raise SdkApiError(status_code=refuse[access_token], message="API error",
                              response_body={"title": "x", "status": refuse[access_token],
                                             "detail": "token refused"})
        return sdk.SessionStatusResponse.from_dict(STATUS)

    client._auth = auth  # type: ignore[assignment]
    client._sessions.get_session_status = get_session_status  # type: ignore[method-assign]
    return auth


async def test_a_401_refreshes_the_token_and_tries_once_more(client: KsefClient) -> None:
    seen: list[str] = []
    auth = patch(client, {"stale": 401}, seen)
    status = await client.session_status("ref")
    assert status.code == 100
    assert seen == ["stale", "fresh"] and auth.invalidated == ["stale"]


async def test_a_second_401_or_a_403_is_raised(client: KsefClient) -> None:
    seen: list[str] = []
    patch(client, {"stale": 401, "fresh": 401}, seen)
    with pytest.raises(KsefAuthError) as caught:
        await client.session_status("ref")
    assert caught.value.status == 401 and seen == ["stale", "fresh"]

    seen.clear()
    patch(client, {"stale": 403}, seen)
    with pytest.raises(KsefAuthError) as caught:
        await client.session_status("ref")
    assert caught.value.status == 403 and seen == ["stale"]


async def test_protected_calls_need_a_token() -> None:
    async with KsefClient(emulator("http://127.0.0.1:9"), NIP) as anonymous:
        with pytest.raises(KsefAuthError, match="no KSeF token"):
            await anonymous.session_status("ref")


async def test_page_size_outside_ksef_range_is_refused(client: KsefClient) -> None:
    with pytest.raises(ValueError, match="page size"):
        await client.invoice_page("ref", page_size=5)
    with pytest.raises(ValueError, match="exactly one"):
        await client.invoice_upo("ref")
