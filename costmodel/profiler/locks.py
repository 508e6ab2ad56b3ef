"""One run at a time per physical device, machine-wide: an exclusive ``flock`` on a file named after the device.

Key: a GPU's NVML UUID (``GPU-...``, or ``MIG-...`` for a MIG slice), so "cuda", "cuda:0" and
``CUDA_VISIBLE_DEVICES=1 ... cuda:0`` meet on the same lock when they are the same GPU; the CPU has one key per
host (``cpu-<hostname>``). A device whose UUID is unknown (NVML cannot see it) is keyed by what is known
(``cuda-unknown-<CUDA_VISIBLE_DEVICES token or index>``), and the child re-keys by the UUID torch reports.

Directory: ``$COSTMODEL_LOCK_DIR``, else ``/tmp/costmodel-locks`` -- shared by every user of the machine (a
per-user place such as ``$XDG_RUNTIME_DIR`` or ``$HOME`` would let two users run on one GPU at once). It is made
mode 1777 (sticky: a user cannot delete another's lock file); lock files are created 0666 with ``O_EXCL`` and
opened without ``O_CREAT`` when they exist (``fs.protected_regular`` refuses ``O_CREAT`` on another user's file in
a sticky directory), never through a symlink. The holder ({"pid", "run_id", "since", "what"}) is written into the
file; the kernel releases the lock when the holding process ends, however it ends. Used by ``profile``, ``probe``
and the data-parallel check.
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import stat
import time
from pathlib import Path

LOCK_DIR_ENV = "COSTMODEL_LOCK_DIR"
DEFAULT_LOCK_DIR = "/tmp/costmodel-locks"


class LockError(OSError):
    """The lock directory cannot be used (the message says why)."""


def lock_dir(path: str | os.PathLike | None = None) -> Path:
    """The lock directory, created (mode 1777 for the shared default) and checked."""
    p = Path(path or os.environ.get(LOCK_DIR_ENV) or DEFAULT_LOCK_DIR)
    try:
        os.mkdir(p, 0o1777)
        os.chmod(p, 0o1777)  # mkdir's mode is masked by the umask
    except FileExistsError:
        pass
    except OSError as exc:
        raise LockError(exc.errno or errno.EACCES, f"cannot create the lock directory {p}: {exc.strerror}") from None
    st = os.lstat(p)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise LockError(errno.ENOTDIR, f"the lock directory {p} is not a directory (a symlink or a file); "
                        f"set {LOCK_DIR_ENV} to a directory")
    if st.st_uid != os.getuid() and (st.st_mode & 0o1002) != 0o1002:
        raise LockError(errno.EACCES, f"the lock directory {p} belongs to uid {st.st_uid} and is not world-writable "
                        f"with the sticky bit (mode {oct(st.st_mode & 0o7777)}); set {LOCK_DIR_ENV}")
    return p


def host_key() -> str:
    return "cpu-" + (socket.gethostname() or "localhost")


def safe_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", key)[:200] + ".lock"


def lock_file(key: str, directory: str | os.PathLike | None = None) -> Path:
    return lock_dir(directory) / safe_name(key)


def _open(path: Path) -> int:
    flags = os.O_RDWR | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    try:
        return os.open(path, flags)
    except FileNotFoundError:
        pass
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            os.fchmod(fd, 0o666)  # every user may take the lock and write the holder
        except OSError:
            pass
        return fd
    except FileExistsError:  # created by another process meanwhile
        return os.open(path, flags)
    except PermissionError:
        pass
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))  # flock works read-only


def acquire(key: str, directory=None, run_id: str = "", what: str = "") -> tuple[int | None, dict | None]:
    """(fd, None) holding the lock (keep the fd open as long as the device is in use; closing it or exiting
    releases it), or (None, holder) when another process holds it."""
    import fcntl

    fd = _open(lock_file(key, directory))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read(fd)
        os.close(fd)
        return None, holder
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "run_id": run_id, "since": time.time(), "what": what,
                                  "key": key}).encode(), 0)
    except OSError:  # a read-only descriptor (another user's file without write permission): the lock still holds
        pass
    return fd, None


def _read(fd: int, patience_s: float = 1.0) -> dict:
    """The holder written in the lock file. The holder writes it just after taking the lock, so an empty or half
    file means "a moment ago": read again for up to ``patience_s`` (a loaded machine can pause a process there)."""
    end = time.time() + patience_s
    while True:
        text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            if time.time() > end:
                return {"pid": None, "run_id": None, "raw": text}
            time.sleep(0.01)


def holder(key: str, directory=None) -> dict | None:
    """Who holds the lock ({"pid", "run_id", "since", "what", "key"}), or None when it is free."""
    import fcntl

    path = lock_file(key, directory)
    if not path.exists():
        return None
    fd = _open(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def release(fd: int | None) -> None:
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


def device_key(device: str, entry: dict | None = None, env: dict | None = None) -> str:
    """The lock key of ``device`` ("cpu", "cuda", "cuda:N"): the GPU's UUID (from ``gpus.describe`` unless an entry
    is given), else what identifies it without NVML."""
    if not device.startswith("cuda"):
        return host_key()
    from .gpus import cuda_index, describe, parse_visible_devices

    entry = describe(device, env=env) if entry is None else entry
    if entry.get("known") and entry.get("uuid"):
        return entry["uuid"]
    env = os.environ if env is None else env
    idx = cuda_index(device)
    vis = parse_visible_devices(env.get("CUDA_VISIBLE_DEVICES"))
    token = vis[idx] if vis and idx < len(vis) else idx
    return f"cuda-unknown-{token}"
