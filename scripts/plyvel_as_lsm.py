"""pytest plugin (`-p plyvel_as_lsm`): `import plyvel` gives lsm.

Loaded before collection, so a test module's own `import plyvel` finds lsm
already registered under that name and runs unchanged against it.
"""
import sys

import lsm

sys.modules["plyvel"] = lsm
