"""`python -m emulator`: the same as `tryon-gateway emulator`."""

from __future__ import annotations

import sys

from service.cli import main

sys.exit(main(["emulator", *sys.argv[1:]]))
