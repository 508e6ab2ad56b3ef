"""Child processes that die with their parent, and what their end means. No torch here.

Every child (profile worker, probe, data-parallel rank) is started by ``spawn``:

- in a new session (its own process group, so a kill takes its children too);
- with the read end of a pipe whose write end only the parent holds (``PARENT_PIPE_ENV`` names the fd). The
  child's ``watch_parent`` thread blocks on it; end of file means every copy of the write end is closed, i.e.
  the parent process is gone (killed, crashed, exited) -- or the parent closed it to cancel. The child then
  kills its own process group. This works whatever thread of the parent spawned it (a Streamlit script thread
  ends after every rerun, so ``PR_SET_PDEATHSIG``, which fires when the spawning *thread* ends, cannot be used
  there);
- on Linux, when spawned from the main thread, also ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` (via ctypes), which the
  kernel applies even if the child is stuck in C code and cannot run its watcher thread.

``exit_status`` turns a child's end into a status: cancelled, timeout, oom only when memory was the cause
(``MemoryError`` / an allocator failure in the child, or the cgroup's ``oom_kill`` counter rose while it ran),
``killed`` by signal N from outside otherwise.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from ..errors import InputError

PARENT_PIPE_ENV = "COSTMODEL_PARENT_PIPE_FD"
PARENT_PID_ENV = "COSTMODEL_PARENT_PID"
PDEATHSIG_ENV = "COSTMODEL_PDEATHSIG"
PR_SET_PDEATHSIG = 1
MIN_TIMEOUT_S, MAX_TIMEOUT_S = 1.0, 86400.0
# signals a process raises against itself when it crashes (the rest come from outside: kill, the OOM killer...)
CRASH_SIGNALS = {signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGTRAP}

_write_ends: dict[int, int] = {}  # child pid -> write end of its parent pipe (closed when the run is over)
_lock = threading.Lock()


def check_timeout(value, field: str = "timeout") -> float:
    """A time limit in seconds: a finite number from 1 s to 24 h, else InputError (one line)."""
    if isinstance(value, bool):
        raise InputError(field, f"must be a number of seconds from 1 to 86400, got {value!r}")
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise InputError(field, f"must be a number of seconds from 1 to 86400, got {value!r}") from None
    if not math.isfinite(t) or not MIN_TIMEOUT_S <= t <= MAX_TIMEOUT_S:
        raise InputError(field, f"must be a finite number of seconds from 1 to 86400 (24 h), got {value!r}")
    return t


def package_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_VERBOSITY", "error")
    root = str(Path(__file__).resolve().parents[2])  # the directory holding the costmodel package
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra or {})
    return env


def spawn(args: list[str], *, stdout=None, stderr=None, env: dict | None = None, text: bool = False) -> subprocess.Popen:
    """``subprocess.Popen(args)`` in a new session, watching a parent pipe (and PDEATHSIG from the main thread)."""
    r, w = os.pipe()  # both non-inheritable; the child gets ``r`` through pass_fds
    env = dict(package_env() if env is None else env)
    env[PARENT_PIPE_ENV] = str(r)
    env[PARENT_PID_ENV] = str(os.getpid())
    if sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread():
        env[PDEATHSIG_ENV] = "1"
    else:
        env.pop(PDEATHSIG_ENV, None)
    try:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=env, text=text,
                                start_new_session=True, close_fds=True, pass_fds=(r,))
    except BaseException:
        os.close(w)
        raise
    finally:
        os.close(r)
    with _lock:
        _write_ends[proc.pid] = w
    return proc


def release(pid: int | None) -> None:
    """Close the parent end of ``pid``'s pipe (after it ended; closing it earlier makes the child stop itself)."""
    with _lock:
        w = _write_ends.pop(pid, None) if pid else None
    if w is not None:
        try:
            os.close(w)
        except OSError:
            pass


def kill_group(pid: int | None, sig: int = signal.SIGKILL) -> None:
    """Signal the child's process group (it leads one), or the child alone if it does not."""
    if not pid:
        return
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop(proc: subprocess.Popen | None, wait_s: float = 10.0) -> None:
    """Kill a child's group, wait for it, close its pipe (its device lock is free when this returns)."""
    if proc is None:
        return
    kill_group(proc.pid)
    try:
        proc.wait(timeout=wait_s)
    except Exception:  # noqa: BLE001 - a process that will not die is reported by the caller
        pass
    release(proc.pid)


# ---- child side ----------------------------------------------------------------------------------------------------

def set_pdeathsig(sig: int = signal.SIGKILL) -> bool:
    """``prctl(PR_SET_PDEATHSIG, sig)`` on Linux through ctypes. True when set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def watch_parent(on_gone=None) -> bool:
    """In a child started by ``spawn``: die with the parent. Sets PDEATHSIG when asked, exits at once if the parent
    is already gone, and starts a thread that waits for end of file on the parent pipe, then calls ``on_gone()``
    (write a result) and kills this process group. Returns True when a parent pipe was found."""
    if os.environ.get(PDEATHSIG_ENV) == "1":
        set_pdeathsig()
    ppid = os.environ.get(PARENT_PID_ENV)
    if ppid and os.getppid() != int(ppid):  # the parent died before PDEATHSIG was set
        _gone(on_gone)
    fd_text = os.environ.pop(PARENT_PIPE_ENV, None)
    if not fd_text:
        return False
    fd = int(fd_text)

    def run():
        while True:
            try:
                data = os.read(fd, 4096)
            except InterruptedError:
                continue
            except OSError:
                data = b""
            if not data:
                _gone(on_gone)
                return

    threading.Thread(target=run, name="parent-watch", daemon=True).start()
    return True


def _gone(on_gone) -> None:
    try:
        if on_gone is not None:
            on_gone()
    finally:
        try:
            os.killpg(os.getpgrp(), signal.SIGKILL)
        finally:
            os._exit(137)


def set_memory_limit(limit_bytes: int) -> int | None:
    """Soft ``RLIMIT_AS`` = address space now + ``limit_bytes`` (allocations beyond it fail with ENOMEM: torch
    raises "can't allocate memory", Python MemoryError). Returns the limit set, or None where it cannot be set."""
    try:
        import resource

        base = _vm_size()
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        want = int(base + limit_bytes)
        if hard != resource.RLIM_INFINITY:
            want = min(want, hard)
        resource.setrlimit(resource.RLIMIT_AS, (want, hard))
        return want
    except (ImportError, ValueError, OSError):
        return None


def _vm_size() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


# ---- what an end means -----------------------------------------------------------------------------------------------

def cgroup_oom_kills(pid: int | None = None) -> int | None:
    """The ``oom_kill`` count of the cgroup (v2 ``memory.events``; v1 ``memory.oom_control``) of ``pid`` (default
    this process), or None where it cannot be read. A rise while a child ran means the kernel's OOM killer acted."""
    try:
        with open(f"/proc/{pid or 'self'}/cgroup", encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hier, ctrl, path = parts
        candidates = []
        if hier == "0" and ctrl == "":
            candidates.append(Path("/sys/fs/cgroup") / path.lstrip("/") / "memory.events")
        elif "memory" in ctrl.split(","):
            candidates.append(Path("/sys/fs/cgroup/memory") / path.lstrip("/") / "memory.oom_control")
        for c in candidates:
            try:
                for row in c.read_text().splitlines():
                    k, _, v = row.partition(" ")
                    if k == "oom_kill":
                        return int(v)
            except (OSError, ValueError):
                continue
    return None


def signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def exit_status(returncode: int | None, killed_by_us: str | None = None, oom_before: int | None = None,
                oom_after: int | None = None) -> tuple[str, str]:
    """(status, message) for a child that ended without writing a result."""
    if killed_by_us:
        return killed_by_us, ""
    if returncode is None:
        return "error", "the child process did not end"
    if returncode < 0:
        sig = -returncode
        name = signal_name(sig)
        if sig == signal.SIGKILL and oom_before is not None and oom_after is not None and oom_after > oom_before:
            return "oom", (f"the child process was killed by SIGKILL from the kernel's out-of-memory killer "
                           f"(cgroup oom_kill count {oom_before} -> {oom_after})")
        if sig in CRASH_SIGNALS:
            return "error", f"the child process crashed with signal {sig} ({name}) without a result"
        extra = ""
        if sig == signal.SIGKILL:
            extra = (" (not by the profiler; the cgroup's oom_kill count did not rise, so not the OOM killer"
                     if oom_before is not None and oom_after is not None else
                     " (not by the profiler; whether the OOM killer did it is unknown: no cgroup memory events")
            extra += ")"
        return "killed", f"the child process was killed by signal {sig} ({name}) without a result{extra}"
    return "error", f"the child process exited with code {returncode} without a result"


# ---- interrupts in the calling process ----------------------------------------------------------------------------

class Interrupted(BaseException):
    """SIGINT / SIGTERM / SIGHUP arrived while a child ran (``on_signals``); ``signum`` says which."""

    def __init__(self, signum: int):
        super().__init__(signal_name(signum))
        self.signum = signum


class on_signals:
    """``with on_signals():`` -- in the main thread, SIGINT, SIGTERM and SIGHUP raise ``Interrupted`` (so the caller
    can cancel its child, release the device, and say what happened) instead of a traceback or a silent exit."""

    SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")

    def __enter__(self):
        self._old = {}
        if threading.current_thread() is not threading.main_thread():
            return self

        def handler(signum, frame):
            raise Interrupted(signum)

        for name in self.SIGNALS:
            sig = getattr(signal, name, None)
            if sig is not None:
                self._old[sig] = signal.signal(sig, handler)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False
