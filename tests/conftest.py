import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub look-ups (they retry for ~26 s offline)
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # `from reference import ...`
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `import costmodel` without installing

# tests never touch the user's ~/.costmodel: a throwaway database and profiler folder for the session
# (tests that need their own still set these with monkeypatch)
import tempfile  # noqa: E402

_TMP = tempfile.mkdtemp(prefix="costmodel-tests-")
os.environ.setdefault("COSTMODEL_DB", os.path.join(_TMP, "costmodel.db"))
os.environ.setdefault("COSTMODEL_PROFILER_DIR", os.path.join(_TMP, "profiler"))
# ... and never the machine-wide device locks (/tmp/costmodel-locks), which other users' runs hold
os.environ.setdefault("COSTMODEL_LOCK_DIR", os.path.join(_TMP, "locks"))
