"""Continuation-token paging as async iterators.

KSeF hands back an opaque `continuationToken` with each page (header `x-continuation-token`
on the next request); the last page has none. A server that repeats a token would loop
forever, so a repeat is a protocol error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Protocol, TypeVar

from pipeline.ksef_api.errors import KsefProtocolError

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Page(Protocol[T_co]):
    @property
    def continuation_token(self) -> str | None: ...


P = TypeVar("P", bound=Page[object])


async def pages(
    fetch: Callable[[str | None], Awaitable[P]], start: str | None = None
) -> AsyncIterator[P]:
    """Yield pages from `fetch(token)` until one comes back without a continuation token.

    `start` resumes from a token saved earlier (e.g. after a restart).
    """
    token = start
    seen: set[str] = set()
    while True:
        page = await fetch(token)
        yield page
        token = page.continuation_token or None
        if token is None:
            return
        if token in seen:
            raise KsefProtocolError("KSeF repeated a continuation token; paging would not end")
        seen.add(token)


async def items(
    page_iter: AsyncIterator[P], unpack: Callable[[P], Iterable[T]]
) -> AsyncIterator[T]:
    """Flatten pages into their items."""
    async for page in page_iter:
        for item in unpack(page):
            yield item
