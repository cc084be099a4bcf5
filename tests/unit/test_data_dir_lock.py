"""One worker per data directory: a second one is refused at once, with the holder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.runtime.data_dir_lock import DataDirBusy, hold_data_dir


def test_a_second_holder_is_refused_until_the_first_lets_go(tmp_path: Path) -> None:
    first = hold_data_dir(tmp_path / "w1")
    with pytest.raises(DataDirBusy, match=rf"w1 is in use by another worker \(pid {os.getpid()}\)"):
        hold_data_dir(tmp_path / "w1")
    hold_data_dir(tmp_path / "w2").close()  # another directory is free
    first.close()
    hold_data_dir(tmp_path / "w1").close()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pipeline.runtime.data_dir_lock import "
         "hold_data_dir; h = hold_data_dir(sys.argv[1]); print('held', flush=True); "
         "time.sleep(60)", str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(DataDirBusy, match=f"pid {holder.pid}"):
            hold_data_dir(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    hold_data_dir(tmp_path).close()  # the kernel dropped the killed process's lock
