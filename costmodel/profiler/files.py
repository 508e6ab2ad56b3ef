"""Names of the files in a run directory, and an atomic JSON writer (shared by parent and child)."""

from __future__ import annotations

import json
import os
from pathlib import Path

JOB_FILE = "job.json"  # written by the parent: the request, the resolved config, the deadline, the lock path
PROGRESS_FILE = "progress.jsonl"  # appended by the child: one JSON object per line
RESULT_FILE = "result.json"  # written by the child (or its watchdog) at the end
FINAL_FILE = "final.json"  # written by the parent: the ProfileResult with predictions and comparison
LOG_FILE = "child.log"  # the child's stdout and stderr


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    return str(o)


def write_json_atomic(path: Path, data: dict) -> None:
    """Write to a temporary file and rename: a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, default=_json_default), encoding="utf-8")
    os.replace(tmp, path)
