"""Helpers several test files share (fixtures are in conftest.py): a pass context with every field named,
and the CLI run in-process or as ``python -m costmodel`` in a subprocess.

The environment (HF_HUB_OFFLINE, a throwaway COSTMODEL_DB) is set once, in conftest.py, and inherited by
every subprocess started from ``os.environ``.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

from costmodel.layers import Ctx

ROOT = Path(__file__).resolve().parent.parent


def make_ctx(batch: int = 1, seq: int = 8, *, kv_len: int | None = None, image_size: int = 0, training: bool = True,
             stream_bytes: float = 4, compute_bytes: float = 4, kv_bytes: float = 2, autocast: bool = False,
             eager_attention: bool = False, dropout: bool = False) -> Ctx:
    """A ``costmodel.layers.Ctx`` for one pass; ``kv_len`` defaults to ``seq``."""
    return Ctx(batch=batch, seq=seq, kv_len=seq if kv_len is None else kv_len, image_size=image_size,
               training=training, stream_bytes=stream_bytes, compute_bytes=compute_bytes, kv_bytes=kv_bytes,
               autocast=autocast, eager_attention=eager_attention, dropout=dropout)


def cli(argv: list[str]) -> tuple[int, str, str]:
    """``costmodel.cli.main(argv)`` in this process: (exit status, stdout, stderr)."""
    from costmodel.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def run_cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m costmodel *args`` in a subprocess from the repository root (``env`` adds variables)."""
    return subprocess.run([sys.executable, "-m", "costmodel", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)
