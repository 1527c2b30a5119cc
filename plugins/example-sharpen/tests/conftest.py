"""Let the tests run from a source checkout too (an installed plugin needs nothing here)."""

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("diffedit_sharpen") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
