"""What every benchmark report starts and ends with: the machine it ran on, and the table, printed and (with
``--out``) written to a Markdown file. Imported by the scripts beside it (``python benchmarks/<script>.py``)."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path


def machine_line() -> str:
    """When and where a measurement ran: date, CPU architecture and count, Python, the 1-minute load average."""
    return (f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, {os.cpu_count()} CPUs, Python "
            f"{platform.python_version()}, load average {os.getloadavg()[0]:.2f}")


def emit(lines: list[str], out: str | None = None) -> str:
    """Print the report and, when ``out`` is given, write it there (one trailing newline)."""
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        Path(out).write_text(text, encoding="utf-8")
    return text
