"""`python -m model ...` is the `orcaport` command (see model/cli.py)."""

import sys

from model.cli import main

sys.exit(main())
