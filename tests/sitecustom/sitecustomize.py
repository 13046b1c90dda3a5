# Loaded by every Python subprocess the tests start (PYTHONPATH): no traffic off the machine.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import netblock  # noqa: E402

netblock.install()
