"""Every test talks to the local emulator: KSEF_ENV has no default outside tests and the
demo (a worker refuses to start without it), so the tests set it here, for themselves and
for the processes they start. A KSEF_ENV or KSEF_QR_ENV of the shell never sends a test
to MF's KSeF nor into its QR links; tests about those settings set them themselves."""

from __future__ import annotations

import os

os.environ["KSEF_ENV"] = "emulator"
os.environ.pop("KSEF_QR_ENV", None)
