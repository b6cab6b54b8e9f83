"""``python -m aesmamba_demo`` = ``aesmamba-demo`` = ``aesmamba demo``."""

import sys

from .cli import main

sys.exit(main())
