"""`python -m styledrop.cli` runs the command line, as `python -m styledrop` does."""

import sys

from . import main

sys.exit(main())
