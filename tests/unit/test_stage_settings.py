"""The stage and mode settings read in pipeline/runtime/settings.py: their defaults with
no variable set are the dataclasses' own (the README's), and each variable reaches its
field."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from pipeline.runtime import settings as s
from pipeline.stages.s1_validate_seal.submission import AttachmentPolicy
from pipeline.stages.s2_pack.packing import PackSettings

CLASSES = (s.KsefApiSettings, s.ValidateSealSettings, s.PackStageSettings,
           s.SubmitStageSettings, s.SettleStageSettings, s.ModeStateSettings,
           s.LatarniaSettings, s.ObservedOutageSettings, s.DeadlineSettings)


@pytest.fixture
def bare(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith(("KSEF_", "KAFKA_")):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize("cls", CLASSES, ids=[c.__name__ for c in CLASSES])
def test_defaults_with_nothing_set_are_the_dataclass_defaults(
        bare: pytest.MonkeyPatch, cls: type) -> None:
    read = cls.from_env()  # type: ignore[attr-defined]
    assert read == cls()
    assert dataclasses.is_dataclass(read)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(read, dataclasses.fields(read)[0].name, None)


def test_each_variable_reaches_its_field(bare: pytest.MonkeyPatch) -> None:
    for name, value in {"KSEF_SUBMIT_CONCURRENCY": "3", "KSEF_HOLD_PROBE_S": "0.5",
                        "KSEF_UPO_CONCURRENCY": "7", "KSEF_MODE_TICK_S": "2",
                        "KSEF_LATARNIA_POLL_S": "10", "KSEF_DEADLINE_RISK_HORIZON_H": "24",
                        "KSEF_PACK_FORMAT": "tar", "KSEF_PACK_LEVEL": "6",
                        "KSEF_PART_BYTES": "5000", "KSEF_ATTACHMENT_SELLERS": " 1,2 ",
                        "KSEF_SPOOL_DIR": "/srv/spool", "KSEF_STREAM_WAIT_EMPTY": "0",
                        "KSEF_UPLOAD_PARALLELISM": "2", "KSEF_VALIDATE_BATCH": "20"}.items():
        bare.setenv(name, value)
    assert s.SubmitStageSettings.from_env() == s.SubmitStageSettings(concurrency=3,
                                                                     hold_probe_s=0.5)
    assert s.SettleStageSettings.from_env().concurrency == 7
    assert s.ModeStateSettings.from_env().tick_s == 2.0
    # the unreachable threshold defaults to two polls of the poll given
    assert s.LatarniaSettings.from_env() == s.LatarniaSettings(poll_s=10.0,
                                                               unreachable_after_s=20.0)
    assert s.DeadlineSettings.from_env().risk_horizon_h == 24.0
    seal = s.ValidateSealSettings.from_env()
    assert (seal.pack_level, seal.attachment_sellers, seal.batch) == (6, "1,2", 20)
    assert AttachmentPolicy.parse(seal.attachment_sellers) == AttachmentPolicy(
        frozenset({"1", "2"}))
    pack = s.PackStageSettings.from_env()
    assert (pack.archive_format, pack.deflate_level, pack.max_part_bytes) == ("tar", 6, 5000)
    worker = s.WorkerSettings.from_env()
    assert worker.spool_root() == Path("/srv/spool")
    assert worker.stream_wait_empty is False
    assert s.KsefApiSettings.from_env().upload_parallelism == 2


def test_spool_root_defaults_to_the_data_dirs_spool(bare: pytest.MonkeyPatch) -> None:
    bare.setenv("KSEF_DATA_DIR", "/var/w1")
    assert s.WorkerSettings.from_env().spool_root() == Path("/var/w1/spool")
    assert PackSettings.build(s.PackStageSettings(), Path("/x")).limits.max_invoices == 10_000


def test_a_bad_number_fails_as_it_did(bare: pytest.MonkeyPatch) -> None:
    bare.setenv("KSEF_SUBMIT_CONCURRENCY", "two")
    with pytest.raises(ValueError, match="invalid literal for int"):
        s.SubmitStageSettings.from_env()


def test_token_variables_are_only_the_ksef_token_ones(bare: pytest.MonkeyPatch) -> None:
    bare.setenv("KSEF_TOKEN_1111111111", "t")
    bare.setenv("KSEF_TOKENS_FILE", "/f")
    assert s.token_variables() == {"KSEF_TOKEN_1111111111": "t"}


def test_a_validate_batch_below_one_is_refused(bare: pytest.MonkeyPatch) -> None:
    bare.setenv("KSEF_VALIDATE_BATCH", "0")
    with pytest.raises(s.SettingsError, match="KSEF_VALIDATE_BATCH must be at least 1"):
        s.ValidateSealSettings.from_env()
