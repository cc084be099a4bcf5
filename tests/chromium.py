"""Headless Chromium for the status page: the DOM it renders and a screenshot.

Also a command for the documentation's picture of a running worker's page:
    python -m tests.chromium http://127.0.0.1:PORT/ksef/status docs/img/status-page.png
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

WINDOW = (1280, 1600)
_NAMES = ("chromium", "chromium-browser", "google-chrome")


def browser() -> str | None:
    """The Chromium to run: KSEF_CHROMIUM, else the first one on PATH."""
    chosen = os.environ.get("KSEF_CHROMIUM")
    if chosen:
        return chosen
    return next((found for name in _NAMES if (found := shutil.which(name))), None)


def _run(args: list[str], profile: Path, timeout_s: float) -> subprocess.CompletedProcess[str]:
    exe = browser()
    if exe is None:
        raise FileNotFoundError("no Chromium (apt-get install chromium; ops/test installs it)")
    # A profile of its own: no clash with another Chromium of this user, nothing kept.
    cmd = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-extensions", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)


def dump_dom(url: str, profile: Path, timeout_s: float = 120) -> str:
    """The page's DOM after Chromium loaded and laid it out, serialised as HTML."""
    done = _run(["--dump-dom", url], profile, timeout_s)
    if done.returncode != 0 or "<body" not in done.stdout:
        raise RuntimeError(f"chromium --dump-dom {url} failed ({done.returncode}): "
                           f"{done.stderr[-2000:]}")
    return done.stdout


def screenshot(url: str, path: Path, profile: Path, timeout_s: float = 120) -> tuple[int, int]:
    """A PNG of the page at WINDOW size; returns its (width, height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    done = _run([f"--screenshot={path}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                 "--hide-scrollbars", url], profile, timeout_s)
    if done.returncode != 0 or not path.is_file():
        raise RuntimeError(f"chromium --screenshot {url} failed ({done.returncode}): "
                           f"{done.stderr[-2000:]}")
    return png_size(path.read_bytes())


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's header; ValueError when it is no PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="ksef-chromium-") as profile:
        size = screenshot(argv[0], Path(argv[1]), Path(profile))
    print(f"{argv[1]}: {size[0]}x{size[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
