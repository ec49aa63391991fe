"""``python -m mock_bank`` is ``mock-bank``."""

import sys

from mock_bank.cli import main

sys.exit(main())
