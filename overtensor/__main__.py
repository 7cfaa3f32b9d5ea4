"""``python -m overtensor``: the command-line interface."""

import sys

from overtensor.cli import main

sys.exit(main())
