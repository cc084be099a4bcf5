"""`Recent`: a memo that forgets what was written longest ago, never more than it holds."""

from __future__ import annotations

import pytest

from pipeline.runtime.recent import Recent


def test_writing_past_capacity_forgets_the_oldest_write() -> None:
    memo: Recent[str, int] = Recent(3)
    for i, key in enumerate("abcd"):
        memo[key] = i
    assert list(memo) == ["b", "c", "d"]
    assert "a" not in memo and memo.get("a") is None
    assert len(memo) == 3


def test_a_key_written_again_is_the_newest() -> None:
    memo: Recent[str, int] = Recent(2)
    memo["a"], memo["b"] = 1, 2
    memo["a"] = 3  # "b" is now the oldest write
    memo["c"] = 4
    assert dict(memo) == {"a": 3, "c": 4}


def test_reading_does_not_keep_an_entry_alive() -> None:
    memo: Recent[str, int] = Recent(2)
    memo["a"], memo["b"] = 1, 2
    assert memo["a"] == 1
    memo["c"] = 3
    assert "a" not in memo


def test_a_million_writes_hold_only_the_capacity() -> None:
    memo: Recent[int, int] = Recent(1000)
    for i in range(1_000_000):
        memo[i] = i
    assert len(memo) == 1000 and min(memo) == 999_000


def test_entries_can_be_deleted_and_capacity_must_be_positive() -> None:
    memo: Recent[str, int] = Recent(1)
    memo["a"] = 1
    del memo["a"]
    assert len(memo) == 0
    with pytest.raises(ValueError):
        Recent(0)
