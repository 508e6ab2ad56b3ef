"""Parent side of a profiling run (no torch here): predict, check memory, take the device lock, start the
child, poll its progress, enforce the time limit, cancel, and turn whatever happened into a
``ProfileResult`` -- never an exception.

Typical use (the dashboard keeps the handle in its session state and polls it):

    handle = start_profile(ProfileRequest("gpt2", {"task": "train", "batch": 1, "seq": 128,
                                                   "precision": "fp32"}, timeout_s=300))
    while not handle.done():        # done() also kills the child past its deadline
        p = handle.progress()       # {"stage", "fraction", "message", "elapsed_s", ...}
        time.sleep(0.5)
    result = handle.result()        # ProfileResult; handle.cancel() stops it early

or ``run_profile(request, on_progress=print)`` blocks until the result.

Each child is a fresh interpreter (``python -m costmodel.profiler.worker RUN_DIR``, started with
``subprocess`` in a new session, so it is its own process-group leader); cancel and timeout kill the whole
group. Importing torch and transformers in the child takes a few seconds; the time limit counts them.

Run directories live under ``$COSTMODEL_PROFILER_DIR`` (default ``~/.costmodel/profiler``):
``runs/<run_id>/`` (job.json, progress.jsonl, result.json, final.json, child.log) and ``locks/<device>.lock``.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path

from ..errors import InputError
from .compare import clean_json, comparison_rows, predicted_from_estimate
from .env import default_hardware, device_label, environment_parent, host_memory_available_bytes, nvml_device
from .request import ProfileRequest, ProfileResult, resolve_model
from .files import FINAL_FILE, JOB_FILE, LOG_FILE, PROGRESS_FILE, RESULT_FILE, write_json_atomic

DIR_ENV = "COSTMODEL_PROFILER_DIR"
# Host memory the child needs beyond the model: the interpreter with torch and transformers imported
# (about 345 MB RSS measured with /usr/bin/time on the CPU build of torch 2.13 + transformers 5.23),
# rounded up.
CHILD_PROCESS_BYTES = 512 * 2**20
# Refuse a run whose prediction exceeds this share of the free memory: the estimate can be a few % low
# and other processes move.
MEMORY_MARGIN = 0.90


def base_dir(path: str | os.PathLike | None = None) -> Path:
    p = Path(path) if path else Path(os.environ.get(DIR_ENV) or Path.home() / ".costmodel" / "profiler")
    (p / "runs").mkdir(parents=True, exist_ok=True)
    (p / "locks").mkdir(parents=True, exist_ok=True)
    return p


def lock_path(device: str, base: Path) -> Path:
    return base / "locks" / f"{device.replace(':', '_')}.lock"


def available_memory_bytes(device: str) -> tuple[int | None, str]:
    """(bytes a new run can use, where the number comes from). GPU: NVML free memory (no CUDA context
    is created in this process); CPU: MemAvailable of /proc/meminfo."""
    if device.startswith("cuda"):
        from .env import cuda_index

        info = nvml_device(cuda_index(device))
        if info.get("available"):
            return info["memory_free_bytes"], "free GPU memory (NVML)"
        return None, info.get("reason", "no NVIDIA GPU")
    return host_memory_available_bytes(), "available host memory (MemAvailable, /proc/meminfo)"


def lock_holder(device: str, base_dir_path: str | os.PathLike | None = None) -> dict | None:
    """Who holds the device's run lock ({"pid", "run_id", "since"}), or None when it is free."""
    import fcntl

    path = lock_path(device, base_dir(base_dir_path))
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                return {"pid": None, "run_id": None, "raw": text}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _adjust_config(cfg: dict, device: str, overrides: dict, notes: list) -> dict:
    """The RNN kernel the estimator assumes must be the one that will run on this device."""
    fam = cfg.get("family")
    if fam in ("lstm", "gru") and "kernel" not in (overrides or {}):
        want = "cudnn" if device.startswith("cuda") else ("onednn" if fam == "lstm" else "native")
        if cfg.get("kernel", "cudnn") != want:
            notes.append(f"RNN kernel set to {want!r} for {device} (the config said {cfg.get('kernel', 'cudnn')!r})")
            cfg = {**cfg, "kernel": want}
    return cfg


def resolve_efficiency(efficiency, label: str, store=None):
    """(Efficiency or None, source text). ``efficiency``: an Efficiency, a dict of its fields, None
    (the estimator's defaults) or "calibrated" (the store's latest calibration of this device, else
    the defaults)."""
    from ..perf import Efficiency

    if efficiency is None:
        return None, "estimator defaults"
    if isinstance(efficiency, Efficiency):
        return efficiency, efficiency.source
    if isinstance(efficiency, dict):
        eff = Efficiency(**efficiency)
        return eff, eff.source
    if efficiency == "calibrated":
        from .calibrate import calibrated_efficiency

        eff = calibrated_efficiency(label, store)
        return (eff, eff.source) if eff else (None, f"estimator defaults (no calibration stored for {label})")
    raise InputError("efficiency", "must be an Efficiency, a dict of its fields, None or 'calibrated'")


def predict(request: ProfileRequest, efficiency=None, store=None, label: str | None = None):
    """(config, predicted dict, estimate, notes) for a request, without running anything."""
    from ..api import estimate

    notes: list[str] = []
    name, cfg = resolve_model(request.model, request.config_overrides)
    cfg = _adjust_config(cfg, request.device, request.config_overrides, notes)
    label = label or device_label(request.device)
    hw = request.hardware or default_hardware(request.device, label)
    eff, source = resolve_efficiency(efficiency, label, store)
    est = estimate(cfg, hardware=hw, workload=request.workload, efficiency=eff)
    predicted = predicted_from_estimate(est)
    predicted["efficiency_source"] = source
    return name, cfg, predicted, est, notes


def _spawn_child(run_dir: Path):
    """``python -m costmodel.profiler.worker RUN_DIR`` in a new session (its own process group, so a kill
    takes its children too), stdout/stderr into the run's child.log. A fresh interpreter: nothing of the
    parent (a Streamlit server, pytest) is inherited but the environment."""
    import subprocess
    import sys

    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_VERBOSITY", "error")
    root = str(Path(__file__).resolve().parents[2])  # the directory holding the costmodel package
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    log = open(run_dir / LOG_FILE, "ab")
    try:
        return subprocess.Popen([sys.executable, "-m", "costmodel.profiler.worker", str(run_dir)], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, close_fds=True)
    finally:
        log.close()


def _pid_running(pid: int) -> bool:
    """True while ``pid`` runs (a zombie -- exited, not yet reaped by a lost Popen -- counts as ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class RunHandle:
    """A started (or already finished) run. Poll ``done()``/``progress()``; ``cancel()``; ``wait()``."""

    def __init__(self, run_dir: Path, result: ProfileResult | None = None, process=None, deadline: float = 0.0,
                 store=None, json_dir=None, base: dict | None = None):
        self.run_dir = Path(run_dir)
        self.run_id = self.run_dir.name
        self.process = process
        self.deadline = deadline
        self.started = time.time()
        self._result = result
        self._killed: str | None = None
        self._store = store
        self._json_dir = json_dir
        self._base = base or {}

    # ---- polling ---------------------------------------------------------------------------------------
    def progress(self) -> dict:
        """The latest progress line: {"stage", "fraction" 0-1, "message", "elapsed_s", "step", "of"}."""
        if self._result is not None:
            return {"stage": "finished", "fraction": 1.0, "message": self._result.status,
                    "elapsed_s": self._result.elapsed_s}
        last = {"stage": "starting", "fraction": 0.0, "message": "starting the child process"}
        try:
            with open(self.run_dir / PROGRESS_FILE, encoding="utf-8") as f:
                for line in f:
                    line = line.strip()
                    if line:
                        try:
                            last = json.loads(line)
                        except json.JSONDecodeError:  # a line being written
                            pass
        except FileNotFoundError:
            pass
        last["elapsed_s"] = round(time.time() - self.started, 3)
        last["time_left_s"] = round(max(0.0, self.deadline - time.time()), 3)
        return last

    def _alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        pid = self._pid()
        if pid is None or (self.run_dir / RESULT_FILE).exists():
            return False
        return _pid_running(pid)

    def _pid(self) -> int | None:
        if self.process is not None and self.process.pid:
            return self.process.pid
        try:
            return int((self.run_dir / "pid").read_text())
        except (OSError, ValueError):
            return None

    def done(self) -> bool:
        """True once the run has ended (and its result is ready). Kills the child past its deadline."""
        if self._result is not None:
            return True
        if self._alive():
            if time.time() > self.deadline:
                self._kill("timeout")
            else:
                return False
        self._finish()
        return True

    def wait(self, timeout: float | None = None, poll_s: float = 0.1, on_progress=None) -> ProfileResult | None:
        """Block until the run ends (or ``timeout`` seconds); returns the result, or None if still running."""
        end = None if timeout is None else time.time() + timeout
        last = None
        while not self.done():
            if on_progress is not None:
                p = self.progress()
                key = (p.get("stage"), p.get("step"), p.get("message"))
                if key != last:
                    on_progress(p)
                    last = key
            if end is not None and time.time() > end:
                return None
            time.sleep(poll_s)
        return self._result

    def result(self) -> ProfileResult | None:
        return self._result if self.done() else None

    def cancel(self) -> ProfileResult:
        """Stop the run now (kills the child's process group); its result says "cancelled"."""
        if self._result is None:
            if self._alive():
                self._kill("cancelled")
            self._finish()
        return self._result

    def _kill(self, reason: str) -> None:
        self._killed = reason
        pid = self._pid()
        if pid:
            try:
                if os.getpgid(pid) == pid:  # the child made itself a group leader: take its children too
                    os.killpg(pid, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except Exception:  # noqa: BLE001 - a process that will not die is reported by _finish
                pass

    # ---- the result --------------------------------------------------------------------------------------
    def _finish(self) -> None:
        if self.process is not None:
            try:
                self.process.wait(timeout=5)
            except Exception:  # noqa: BLE001
                pass
        raw = {}
        try:
            raw = json.loads((self.run_dir / RESULT_FILE).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            pass
        base = self._base
        elapsed = time.time() - self.started
        if raw.get("status") == "ok":
            status, message = "ok", raw.get("message", "")
        elif self._killed == "timeout":
            status = "timeout"
            message = (f"killed after its time limit of {base.get('timeout_s', 0):.0f} s "
                       f"(last stage: {self.progress().get('stage')})")
        elif self._killed == "cancelled":
            status, message = "cancelled", "cancelled by the user"
        elif raw:
            status, message = raw.get("status", "error"), raw.get("message", "")
        else:
            code = self.process.returncode if self.process is not None else None
            if code is not None and code < 0:
                try:
                    sig = signal.Signals(-code).name
                except ValueError:
                    sig = str(-code)
                message = f"the child process died from signal {sig} without a result"
                status = "oom" if sig == "SIGKILL" else "error"
                if status == "oom":
                    message += " (SIGKILL from outside: most likely the kernel's out-of-memory killer)"
            else:
                status, message = "error", f"the child process exited with code {code} without a result"
        measured = raw.get("measured", {}) if status == "ok" else {}
        predicted = base.get("predicted", {})
        task = base.get("task", "")
        res = ProfileResult(
            status=status, message=message, run_id=self.run_id, run_dir=str(self.run_dir),
            model=base.get("model", ""), device=raw.get("environment", {}).get("device_label") or base.get("label", ""),
            task=task, request=base.get("request", {}), measured=measured, predicted=predicted,
            environment={**base.get("environment", {}), **raw.get("environment", {})},
            notes=list(base.get("notes", [])) + list(raw.get("notes", [])), elapsed_s=round(elapsed, 3),
        )
        if status == "ok":
            res.comparison = comparison_rows(predicted, measured, task, base.get("request", {}).get("device", "cpu"))
        else:
            if raw.get("traceback"):
                res.notes.append("traceback (last lines): " + raw["traceback"].strip().splitlines()[-1])
            try:
                res.stderr_tail = (self.run_dir / LOG_FILE).read_text(errors="replace")[-4000:]
            except OSError:
                pass
        res = ProfileResult.from_dict(clean_json(res.to_dict()))
        self._result = res
        try:
            write_json_atomic(self.run_dir / FINAL_FILE, res.to_dict())
        except OSError:
            pass
        if status == "ok":
            try:
                save_result(res, store=self._store, json_dir=self._json_dir)
            except Exception as exc:  # noqa: BLE001 - a storage failure must not lose the result
                res.notes.append(f"the run was not saved: {type(exc).__name__}: {exc}")


def _refused(request: ProfileRequest, message: str, predicted=None, name="", label="", notes=()) -> RunHandle:
    res = ProfileResult(status="refused", message=message, model=name, device=label,
                        task=request.workload.get("task", ""), request=request.to_dict(),
                        predicted=clean_json(predicted or {}), notes=list(notes))
    return RunHandle(Path("."), result=res)


def start_profile(request: ProfileRequest | dict, *, efficiency=None, store=None, json_dir=None,
                  base_dir_path: str | os.PathLike | None = None, calibration_store=None) -> RunHandle:
    """Start one run in a child process and return at once. Refusals (bad input, not enough memory,
    device busy, an unsupported precision) come back as a finished handle with status "refused".

    ``efficiency``: None, an Efficiency / dict, or "calibrated" (see ``resolve_efficiency``).
    ``store``: a ``costmodel.storage.Store`` to save successful runs in (and to read the calibration from);
    ``calibration_store``: read the calibration from this store instead (without saving the run there);
    ``json_dir``: also write each record there as ``<run_id>.json``.
    """
    from .build import check_workload
    from ..workload import Workload

    if isinstance(request, dict):
        request = ProfileRequest.from_dict(request)
    label = device_label(request.device)
    try:
        check_workload(Workload.from_dict(request.workload))
        name, cfg, predicted, est, notes = predict(request, efficiency, calibration_store or store, label)
    except InputError as exc:
        return _refused(request, f"{exc}", label=label)
    need = predicted["device_total_bytes"] + (0 if request.device.startswith("cuda") else CHILD_PROCESS_BYTES)
    avail, source = available_memory_bytes(request.device)
    if avail is not None and need > MEMORY_MARGIN * avail:
        extra = "" if request.device.startswith("cuda") else f" (incl. {CHILD_PROCESS_BYTES / 2**30:.2f} GiB for the child's Python + torch)"
        return _refused(request, f"predicted memory {need / 2**30:.2f} GiB{extra} exceeds {MEMORY_MARGIN:.0%} of "
                        f"{source}: {avail / 2**30:.2f} GiB; reduce batch/sequence or use a smaller model",
                        predicted, name, label, notes)
    try:
        base = base_dir(base_dir_path)
        holder = lock_holder(request.device, base)
    except OSError as exc:
        return _refused(request, f"cannot use the profiler directory ({exc}); set {DIR_ENV} to a writable folder",
                        predicted, name, label, notes)
    if holder:
        return _refused(request, f"another run is using {request.device}: run {holder.get('run_id')} "
                        f"(pid {holder.get('pid')}); one run at a time per device", predicted, name, label, notes)
    if avail is None and request.device.startswith("cuda"):
        notes.append(f"free GPU memory unknown in the parent ({source}); the child checks torch.cuda.mem_get_info")
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:8]
    run_dir = base / "runs" / run_id
    run_dir.mkdir(parents=True)
    deadline = time.time() + request.timeout_s
    meta = {"model": name, "label": label, "task": request.workload["task"], "predicted": clean_json(predicted),
            "request": {**request.to_dict(), "config": cfg}, "notes": notes, "timeout_s": request.timeout_s,
            "environment": environment_parent()}
    job = {"run_id": run_id, "request": request.to_dict(), "workload": request.workload, "config": cfg,
           "deadline_unix": deadline, "lock_path": str(lock_path(request.device, base)),
           "predicted_device_total_bytes": predicted["device_total_bytes"], "meta": meta}
    write_json_atomic(run_dir / JOB_FILE, job)
    (run_dir / PROGRESS_FILE).touch()
    proc = _spawn_child(run_dir)
    handle = RunHandle(run_dir, process=proc, deadline=deadline, store=store, json_dir=json_dir, base=meta)
    handle.started = deadline - request.timeout_s
    return handle


def run_profile(request: ProfileRequest | dict, *, on_progress=None, poll_s: float = 0.1, **kwargs) -> ProfileResult:
    """Start a run and wait for it (the time limit still applies). Never raises for a failed run."""
    handle = start_profile(request, **kwargs)
    return handle.wait(poll_s=poll_s, on_progress=on_progress)


def save_result(result: ProfileResult, store=None, json_dir=None) -> int | None:
    """Persist a run: ``store.save_measurement(record)`` and/or ``<json_dir>/<run_id>.json``. Returns the store id."""
    rec = clean_json(result.to_record())
    rid = None
    if store is not None:
        rid = store.save_measurement(rec)
    if json_dir is not None:
        d = Path(json_dir)
        d.mkdir(parents=True, exist_ok=True)
        write_json_atomic(d / f"{result.run_id or 'run'}.json", rec)
    return rid


def load_results(run_root: str | os.PathLike | None = None) -> list[ProfileResult]:
    """Every finished run under the profiler directory (their final.json), oldest first."""
    out = []
    for p in sorted((base_dir(run_root) / "runs").glob(f"*/{FINAL_FILE}")):
        try:
            out.append(ProfileResult.from_dict(json.loads(p.read_text(encoding="utf-8"))))
        except (OSError, json.JSONDecodeError):
            continue
    return out


def attach(run_dir: str | os.PathLike) -> RunHandle:
    """A handle for a run directory started elsewhere (e.g. before a dashboard rerun): poll or cancel it."""
    rd = Path(run_dir)
    final = rd / FINAL_FILE
    if final.exists():
        return RunHandle(rd, result=ProfileResult.from_dict(json.loads(final.read_text(encoding="utf-8"))))
    job = json.loads((rd / JOB_FILE).read_text(encoding="utf-8"))
    h = RunHandle(rd, deadline=float(job["deadline_unix"]), base=job.get("meta", {}))
    h.started = float(job["deadline_unix"]) - float(job["request"]["timeout_s"])
    return h
