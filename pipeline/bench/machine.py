"""What to print beside every figure: the machine's size and how busy it was."""

from __future__ import annotations

import os


def load_note() -> str:
    """CPU count and 1/5/15-minute load averages, e.g. `cpus=2 load=0.41,0.54,1.02`."""
    one, five, fifteen = os.getloadavg()
    return f"cpus={os.cpu_count()} load={one:.2f},{five:.2f},{fifteen:.2f}"
