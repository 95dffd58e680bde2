"""The audit's reproductions reuse the integration harness (tests/integration/conftest.py:
PostgreSQL 15, pgcoro instances, the Wire raw client). Loaded under another module name and
re-exported here, so `from conftest import Wire` works in these files as in the
integration tests. These files demonstrate defects: each test FAILS on the code that has
the defect and passes once it is fixed."""

import importlib.util
import os

_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration",
                     "conftest.py")
_spec = importlib.util.spec_from_file_location("pgcoro_integration_conftest", _path)
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
globals().update({k: v for k, v in vars(_mod).items() if not k.startswith("__")})
