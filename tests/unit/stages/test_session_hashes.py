"""Our sessions' invoice hashes: membership as a frozenset of the texts gave it."""

from __future__ import annotations

import base64
import hashlib
import random

from pipeline.stages.s4_upo.session_hashes import SessionHashes


def _b64(n: int) -> str:
    return base64.b64encode(hashlib.sha256(b"%d" % n).digest()).decode()


def test_membership_matches_a_set_of_the_texts() -> None:
    ours = [_b64(n) for n in range(0, 4000, 2)]
    hashes = SessionHashes(ours + ours[:10])  # repeats count once
    assert len(hashes) == 2000
    probe = [_b64(n) for n in random.Random(7).sample(range(4000), 600)]
    assert [h in hashes for h in probe] == [h in set(ours) for h in probe]
    assert all(h in hashes for h in ours)


def test_what_names_no_sha256_is_never_a_member() -> None:
    hashes = SessionHashes([_b64(1), "not base64!", "aGVsbG8=", ""])
    assert len(hashes) == 1
    for other in ("not base64!", "aGVsbG8=", "", None, 42, _b64(2)):
        assert other not in hashes
    assert SessionHashes([]).__contains__(_b64(1)) is False
