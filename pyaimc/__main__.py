"""``python -m pyaimc`` is the ``pyaimc`` command."""

import sys

from pyaimc.cli import main

sys.exit(main())
