"""`python -m pipeline.cli ...` is `ksef-pipeline ...` (for images without the script)."""

import sys

from pipeline.cli.main import main

sys.exit(main())
