"""Optional parts of the install and what each needs (pyproject.toml ``[project.optional-dependencies]``).

The core (estimator, CLI, dashboard) imports none of them. A command or page that needs one calls
``require(extra)`` first, so a missing extra is one line naming the install command, not an ImportError.
"""

from __future__ import annotations

import importlib.util

from .errors import InputError

EXTRAS = {
    "profile": ("torch", "transformers"),  # the live profiler, the probe, exact counts through transformers
    "measured": ("aiconfigurator_core",),  # NVIDIA's measured per-op tables
}
WHAT = {"profile": "runs real PyTorch steps", "measured": "reads NVIDIA aiconfigurator-core's measured tables"}


def missing(extra: str) -> list[str]:
    """The modules of ``extra`` that are not installed."""
    return [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]


def available(extra: str) -> bool:
    return not missing(extra)


def install_hint(extra: str) -> str:
    return f"pip install 'costmodel[{extra}]'"


def require(extra: str, field: str | None = None) -> None:
    """Raise ``InputError`` naming the install command when ``extra``'s modules are missing."""
    gone = missing(extra)
    if gone:
        raise InputError(field or extra, f"needs {', '.join(gone)}, not installed here (the [{extra}] extra "
                                         f"{WHAT[extra]}): {install_hint(extra)}")
