"""`python -m pipeline.demo` (what `ops/demo` runs)."""

import sys

from pipeline.demo.run import main

sys.exit(main())
