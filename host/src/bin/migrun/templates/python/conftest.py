"""pytest setup: migrun_sdk from the migrun checkout this project was made with, unless it is installed."""

import os
import sys

try:
    import migrun_sdk  # noqa: F401  (pip install <migrun checkout>/sdk/python)
except ImportError:
    SDK = {{python_sdk_literal}}
    if SDK and os.path.isdir(SDK):
        sys.path.insert(0, SDK)
