"""`python -m extradite.gen` runs the `extradite-gen` command."""

import sys

from .cli import main

sys.exit(main())
