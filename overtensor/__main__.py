"""``python -m overtensor``: the command-line interface."""

import sys

from overtensor.cli.main import main

sys.exit(main())
