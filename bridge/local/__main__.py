"""``python -m bridge.local [OPTIONS]``: the same as ``bridge local [OPTIONS]``."""

import sys

from bridge.cli import app

app(args=["local", *sys.argv[1:]], prog_name="python -m bridge.local")
