from __future__ import annotations

from dataclasses import dataclass

import pytest

from pipeline.ksef_api.errors import KsefProtocolError
from pipeline.ksef_api.paging import items, pages


@dataclass(frozen=True)
class FakePage:
    rows: tuple[int, ...]
    continuation_token: str | None


class Server:
    """Pages of 3 rows over `total` rows; tokens are the next offset."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.asked: list[str | None] = []

    async def fetch(self, token: str | None) -> FakePage:
        self.asked.append(token)
        start = int(token or 0)
        end = min(start + 3, self.total)
        return FakePage(tuple(range(start, end)), str(end) if end < self.total else None)


async def test_follows_tokens_until_the_last_page() -> None:
    server = Server(8)
    got = [row async for row in items(pages(server.fetch), lambda p: p.rows)]
    assert got == list(range(8))
    assert server.asked == [None, "3", "6"]


async def test_resumes_from_a_saved_token() -> None:
    server = Server(8)
    got = [row async for row in items(pages(server.fetch, "6"), lambda p: p.rows)]
    assert got == [6, 7]


async def test_single_page_and_empty_token_end_paging() -> None:
    async def fetch(token: str | None) -> FakePage:
        return FakePage((1,), "")

    assert [p.rows async for p in pages(fetch)] == [(1,)]


async def test_a_repeated_token_is_a_protocol_error_not_an_endless_loop() -> None:
    async def fetch(token: str | None) -> FakePage:
        return FakePage((1,), "same")

    with pytest.raises(KsefProtocolError, match="repeated"):
        async for _ in pages(fetch):
            pass
