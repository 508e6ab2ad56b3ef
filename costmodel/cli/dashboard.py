"""``costmodel dashboard``: start the Streamlit app installed beside the package (``costmodel_dashboard/app.py``).

It binds to 127.0.0.1 unless ``--server.address`` says otherwise (anyone who can reach the port can use the
app, save and delete scenarios), and passes the settings of the checkout's ``.streamlit/config.toml`` on the
command line, so an installed copy run from any folder behaves the same.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from ..errors import InputError

APP = Path(importlib.util.find_spec("costmodel_dashboard").origin).parent / "app.py"  # found, not imported
# .streamlit/config.toml, as flags (a config file is only read from the current folder or ~/.streamlit)
SETTINGS = {"server.headless": "true", "browser.gatherUsageStats": "false", "server.fileWatcherType": "none",
            "server.maxUploadSize": "1", "client.showErrorDetails": "none", "client.toolbarMode": "minimal",
            "runner.magicEnabled": "false", "theme.base": "light"}


def register(sub) -> None:
    p = sub.add_parser("dashboard", help="start the dashboard (Streamlit) on http://127.0.0.1:8501")
    p.add_argument("--server.port", dest="server_port", type=int, default=8501,
                   help="port to listen on (1024-65535; default 8501)")
    p.add_argument("--server.address", dest="server_address", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 opens it to your network)")
    p.add_argument("--print-command", action="store_true", help="print the streamlit command instead of running it")
    p.set_defaults(run=run)


def command(port: int, address: str) -> list[str]:
    """The streamlit command line ``costmodel dashboard`` runs."""
    if not isinstance(port, int) or not 1024 <= port <= 65535:
        raise InputError("server.port", f"must be a whole number from 1024 to 65535, got {port!r}")
    if not address or len(address) > 253 or any(c.isspace() for c in address):
        raise InputError("server.address", f"must be a host name or IP address, got {address!r}")
    flags = [f"--{k}={v}" for k, v in SETTINGS.items()]
    return [sys.executable, "-m", "streamlit", "run", str(APP), f"--server.port={port}",
            f"--server.address={address}", *flags]


def launch(cmd: list[str]) -> int:
    """Become the server (POSIX: exec, so signals and ``kill`` reach Streamlit itself), or run it in the foreground
    until it stops (Ctrl-C)."""
    if os.name == "posix":
        sys.stdout.flush()
        os.execv(cmd[0], cmd)
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 0


def run(args) -> int:
    cmd = command(args.server_port, args.server_address)
    if args.print_command:
        print(" ".join(cmd))
        return 0
    return launch(cmd)
