"""Let `python -m bot` behave exactly like the `portbot` command."""

import sys

from bot.cli import main

sys.exit(main())
