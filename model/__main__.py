"""`python -m orcaport.model ...` is the `orcaport` command (see model/cli.py)."""

import sys

from orcaport.model.cli import main

sys.exit(main())
