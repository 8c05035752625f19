"""``python -m csms``."""

from __future__ import annotations

import logging
import os
import sys

from csms.cli import main

code = main()
# Everything is stored and closed by now. Skip the interpreter's teardown: freeing the
# heap of thousands of connections object by object takes about a second, which a
# supervisor's stop timeout (10 s under Docker) should not pay for.
logging.shutdown()
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
