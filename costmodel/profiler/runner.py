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

Each child is a fresh interpreter (``python -m costmodel.profiler.worker RUN_DIR``, started by ``proc.spawn``
in a new session, so it is its own process-group leader, and watching a pipe from this process so that it dies
with it); cancel and timeout kill the whole group. Importing torch and transformers in the child takes a second
or more; the time limit counts them.

Run directories live under ``$COSTMODEL_PROFILER_DIR`` (default ``~/.costmodel/profiler``):
``runs/<run_id>/`` (job.json, progress.jsonl, result.json, final.json, child.log), ``flops_cache/`` (FLOP counts per
model, workload and device) and ``hardware/`` (MIG-scaled profiles). Device locks are machine-wide
(``costmodel.profiler.locks``).

About 520 lines: the parent's whole life cycle of a run (predict, guard, lock, start, poll, kill, collect) in
one place, so every exit path visibly ends in a ProfileResult.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

from ..errors import InputError
from . import locks, proc
from .compare import clean_json, comparison_rows, predicted_from_estimate
from .env import device_label, environment_parent, gpu_entry, hardware_for, host_memory_available_bytes
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
# A CPU child's hard address-space limit (RLIMIT_AS) beyond the interpreter and its libraries: this factor x the
# predicted memory + this slack (thread stacks, malloc arenas and oneDNN scratch are address space too). It backs
# the prediction: a run that allocates far more than predicted fails with "oom" instead of taking the machine.
MEMORY_LIMIT_FACTOR = 2.0
MEMORY_LIMIT_SLACK_BYTES = 2 * 2**30


def base_dir(path: str | os.PathLike | None = None) -> Path:
    p = Path(path) if path else Path(os.environ.get(DIR_ENV) or Path.home() / ".costmodel" / "profiler")
    (p / "runs").mkdir(parents=True, exist_ok=True)
    (p / "locks").mkdir(parents=True, exist_ok=True)
    return p


def available_memory_bytes(device: str, entry: dict | None = None) -> tuple[int | None, str]:
    """(bytes a new run can use, where the number comes from). GPU: NVML free memory of the GPU ``device`` really
    is (matched through CUDA_VISIBLE_DEVICES; no CUDA context is created in this process); CPU: MemAvailable."""
    if device.startswith("cuda"):
        entry = gpu_entry(device) if entry is None else entry
        if entry.get("known"):
            return entry["memory_free_bytes"], f"free GPU memory of {entry['name']} (NVML)"
        return None, entry.get("reason", "unknown GPU")
    return host_memory_available_bytes(), "available host memory (MemAvailable, /proc/meminfo)"


def lock_holder(device: str, lock_dir: str | os.PathLike | None = None) -> dict | None:
    """Who holds the device's run lock ({"pid", "run_id", "since", "what", "key"}), or None when it is free.
    The lock is the physical device's (GPU UUID, or this host for the CPU), machine-wide (``locks.lock_dir``)."""
    return locks.holder(locks.device_key(device), lock_dir)


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


def predict(request: ProfileRequest, efficiency=None, store=None, label: str | None = None, entry: dict | None = None,
            profile_dir=None):
    """(name, config, predicted dict, estimate, notes) for a request, without running anything. The hardware is
    ``request.hardware``, else the profile matching this device (``env.hardware_for``: exact catalog match by
    NVML name and memory, a MIG slice's scaled profile, or the default with a note saying so)."""
    from ..api import estimate

    notes: list[str] = []
    name, cfg = resolve_model(request.model, request.config_overrides)
    cfg = _adjust_config(cfg, request.device, request.config_overrides, notes)
    if request.device.startswith("cuda") and entry is None:
        entry = gpu_entry(request.device)
    label = label or device_label(request.device, entry)
    if request.hardware:
        hw, source = request.hardware, "given (--hardware)"
    else:
        choice = hardware_for(request.device, entry, profile_dir)
        hw, source = choice["hardware"], choice["source"]
        if choice.get("note"):
            notes.append(choice["note"])
    eff, eff_source = resolve_efficiency(efficiency, label, store)
    est = estimate(cfg, hardware=hw, workload=request.workload, efficiency=eff)
    predicted = predicted_from_estimate(est)
    predicted["efficiency_source"] = eff_source
    predicted["hardware_source"] = source
    if isinstance(hw, str) and hw.endswith(".json"):
        predicted["hardware"] = hw  # a file (MIG-scaled profile): calibrations predict stored runs from it again
    return name, cfg, predicted, est, notes


def _spawn_child(run_dir: Path):
    """``python -m costmodel.profiler.worker RUN_DIR`` (``proc.spawn``: its own process group, dies with this
    process), stdout/stderr into the run's child.log. A fresh interpreter: nothing of the parent (a Streamlit
    server, pytest) is inherited but the environment."""
    import subprocess
    import sys

    with open(run_dir / LOG_FILE, "ab") as log:
        return proc.spawn([sys.executable, "-m", "costmodel.profiler.worker", str(run_dir)], stdout=log,
                          stderr=subprocess.STDOUT)


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
        self._oom_before: int | None = None
        self.started_wall: float | None = None

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
            if self.process is not None:  # returns as soon as the child exits
                try:
                    self.process.wait(timeout=max(0.001, min(poll_s, self.deadline - time.time() + 0.01)))
                except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired: still running
                    pass
            else:
                time.sleep(poll_s)
        return self._result

    def result(self) -> ProfileResult | None:
        return self._result if self.done() else None

    def cancel(self, reason: str = "cancelled by the user") -> ProfileResult:
        """Stop the run now (kills the child's process group; its device lock is free when this returns); the
        result's status is "cancelled" and its message ``reason``."""
        if self._result is None:
            self._cancel_reason = reason
            if self._alive():
                self._kill("cancelled")
            self._finish()
        return self._result

    def _kill(self, reason: str) -> None:
        self._killed = reason
        pid = self._pid()
        proc.kill_group(pid)
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except Exception:  # noqa: BLE001 - a process that will not die is reported by _finish
                pass
        else:  # attached from another handle: wait until the pid is gone (the lock goes with it)
            end = time.time() + 10
            while pid and _pid_running(pid) and time.time() < end:
                time.sleep(0.02)

    # ---- the result --------------------------------------------------------------------------------------
    def _finish(self) -> None:
        if self.process is not None:
            try:
                self.process.wait(timeout=5)
            except Exception:  # noqa: BLE001
                pass
            proc.release(self.process.pid)
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
            status, message = "cancelled", getattr(self, "_cancel_reason", "cancelled by the user")
        elif raw:
            status, message = raw.get("status", "error"), raw.get("message", "")
        else:
            if self.process is None:  # attached from elsewhere: the exit code is not ours to read
                status, message = "killed", ("the child process ended without a result (killed from outside, or its "
                                             "parent process ended)")
            else:
                after = proc.cgroup_oom_kills() if self._oom_before is not None else None
                status, message = proc.exit_status(self.process.returncode, None, self._oom_before, after)
        measured = raw.get("measured", {}) if status == "ok" else {}
        predicted = base.get("predicted", {})
        notes = list(base.get("notes", [])) + list(raw.get("notes", []))
        child_gpu = raw.get("gpu") or {}
        if status == "ok" and child_gpu.get("known") and child_gpu.get("uuid") != (base.get("gpu") or {}).get("uuid") \
                and not (base.get("request") or {}).get("hardware"):
            predicted = self._repredict(child_gpu, notes) or predicted
        if measured.get("timing") is not None:
            t = measured["timing"]
            t["wall_s"] = round(elapsed, 4)
            spawned = base.get("spawned_unix")
            if spawned and t.get("child_start_unix"):
                t["spawn_to_child_start_s"] = round(t["child_start_unix"] - spawned, 4)
            if spawned:
                t["parent_before_spawn_s"] = round(spawned - self.started_wall, 4) if self.started_wall else None
        res = ProfileResult(
            status=status, message=message, run_id=self.run_id, run_dir=str(self.run_dir),
            model=base.get("model", ""), device=raw.get("environment", {}).get("device_label") or base.get("label", ""),
            task=base.get("task", ""), request=base.get("request", {}), measured=measured, predicted=predicted,
            environment={**base.get("environment", {}), **raw.get("environment", {})},
            notes=notes, elapsed_s=round(elapsed, 3),
        )
        if status == "ok":
            res.comparison = comparison_rows(predicted, measured, res.task, base.get("request", {}).get("device", "cpu"))
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

    def _repredict(self, child_gpu: dict, notes: list) -> dict | None:
        """The child found (by UUID) another GPU than the parent predicted for: predict again for that one."""
        base = self._base
        try:
            req = ProfileRequest.from_dict({k: v for k, v in base["request"].items() if k != "config"})
            _, _, predicted, _, more = predict(req, base.get("efficiency"), label=child_gpu.get("name"),
                                               entry=child_gpu, profile_dir=base.get("profile_dir"))
        except Exception as exc:  # noqa: BLE001 - keep the first prediction
            notes.append(f"could not predict again for {child_gpu.get('name')}: {exc}")
            return None
        predicted["efficiency_source"] = base.get("predicted", {}).get("efficiency_source")
        notes.append(f"predicted again for {child_gpu.get('name')} (the GPU torch used, by UUID) with "
                     f"{predicted.get('hardware')}")
        notes.extend(more)
        return clean_json(predicted)


def _refused(request: ProfileRequest, message: str, predicted=None, name="", label="", notes=()) -> RunHandle:
    res = ProfileResult(status="refused", message=message, model=name, device=label,
                        task=request.workload.get("task", ""), request=request.to_dict(),
                        predicted=clean_json(predicted or {}), notes=list(notes))
    return RunHandle(Path("."), result=res)


def start_profile(request: ProfileRequest | dict, *, efficiency=None, store=None, json_dir=None,
                  base_dir_path: str | os.PathLike | None = None, calibration_store=None,
                  lock_dir: str | os.PathLike | None = None) -> RunHandle:
    """Start one run in a child process and return at once. Refusals (bad input, not enough memory,
    device busy, an unsupported precision) come back as a finished handle with status "refused".

    ``efficiency``: None, an Efficiency / dict, or "calibrated" (see ``resolve_efficiency``).
    ``store``: a ``costmodel.storage.Store`` to save successful runs in (and to read the calibration from);
    ``calibration_store``: read the calibration from this store instead (without saving the run there);
    ``json_dir``: also write each record there as ``<run_id>.json``; ``lock_dir``: the device-lock directory
    (default ``$COSTMODEL_LOCK_DIR`` or /tmp/costmodel-locks, shared by every user of the machine).
    """
    from dataclasses import asdict

    from .build import check_workload
    from ..workload import Workload

    t_start = time.time()
    if isinstance(request, dict):
        request = ProfileRequest.from_dict(request)
    cuda = request.device.startswith("cuda")
    entry = gpu_entry(request.device) if cuda else None
    label = device_label(request.device, entry)
    try:
        base = base_dir(base_dir_path)
    except OSError as exc:
        return _refused(request, f"cannot use the profiler directory ({exc}); set {DIR_ENV} to a writable folder",
                        label=label)
    try:
        check_workload(Workload.from_dict(request.workload))
        name, cfg, predicted, est, notes = predict(request, efficiency, calibration_store or store, label, entry, base)
    except InputError as exc:
        return _refused(request, f"{exc}", label=label)
    need = predicted["device_total_bytes"] + (0 if cuda else CHILD_PROCESS_BYTES)
    avail, source = available_memory_bytes(request.device, entry)
    if avail is not None and need > MEMORY_MARGIN * avail:
        extra = "" if cuda else f" (incl. {CHILD_PROCESS_BYTES / 2**30:.2f} GiB for the child's Python + torch)"
        return _refused(request, f"predicted memory {need / 2**30:.2f} GiB{extra} exceeds {MEMORY_MARGIN:.0%} of "
                        f"{source}: {avail / 2**30:.2f} GiB; reduce batch/sequence or use a smaller model",
                        predicted, name, label, notes)
    key = locks.device_key(request.device, entry)
    try:
        holder = locks.holder(key, lock_dir)
        ldir = str(locks.lock_dir(lock_dir))
    except OSError as exc:
        return _refused(request, f"cannot use the device-lock directory: {exc}", predicted, name, label, notes)
    if holder:
        return _refused(request, f"another run is using {label}: run {holder.get('run_id')} (pid {holder.get('pid')}, "
                        f"{holder.get('what') or 'profile'}); one run at a time per device", predicted, name, label,
                        notes)
    if avail is None and cuda:
        notes.append(f"free GPU memory unknown in the parent ({source}); the child checks torch.cuda.mem_get_info")
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:8]
    run_dir = base / "runs" / run_id
    run_dir.mkdir(parents=True)
    deadline = time.time() + request.timeout_s
    eff_dict = asdict(efficiency) if hasattr(efficiency, "__dataclass_fields__") else (
        efficiency if isinstance(efficiency, dict) else None)
    if efficiency == "calibrated":
        from .calibrate import calibrated_efficiency

        eff = calibrated_efficiency(label, calibration_store or store)
        eff_dict = asdict(eff) if eff is not None else None
    meta = {"model": name, "label": label, "task": request.workload["task"], "predicted": clean_json(predicted),
            "request": {**request.to_dict(), "config": cfg}, "notes": notes, "timeout_s": request.timeout_s,
            "environment": environment_parent(), "gpu": entry, "efficiency": eff_dict, "profile_dir": str(base)}
    limit = None
    if not cuda:
        limit = int(MEMORY_LIMIT_FACTOR * predicted["device_total_bytes"] + MEMORY_LIMIT_SLACK_BYTES)
    job = {"run_id": run_id, "request": request.to_dict(), "workload": request.workload, "config": cfg,
           "deadline_unix": deadline, "lock_key": key, "lock_dir": ldir, "gpu": entry,
           "predicted_device_total_bytes": predicted["device_total_bytes"],
           "predicted_parts": {k: predicted.get(k) for k in ("weights_bytes", "gradients_bytes", "optimizer_bytes")},
           "available_bytes": avail, "child_process_bytes": 0 if cuda else CHILD_PROCESS_BYTES, "memory_limit_bytes": limit, "memory_limit_factor": MEMORY_LIMIT_FACTOR,
           "memory_limit_slack_bytes": MEMORY_LIMIT_SLACK_BYTES, "flops_cache_dir": str(base / "flops_cache"),
           "meta": meta}
    write_json_atomic(run_dir / JOB_FILE, job)
    (run_dir / PROGRESS_FILE).touch()
    oom_before = proc.cgroup_oom_kills()
    meta["spawned_unix"] = time.time()
    child = _spawn_child(run_dir)
    handle = RunHandle(run_dir, process=child, deadline=deadline, store=store, json_dir=json_dir, base=meta)
    handle.started = deadline - request.timeout_s
    handle.started_wall = t_start
    handle._oom_before = oom_before
    return handle


def run_profile(request: ProfileRequest | dict, *, on_progress=None, poll_s: float = 0.1, **kwargs) -> ProfileResult:
    """Start a run and wait for it (the time limit still applies). Never raises for a failed run; an interrupt
    (Ctrl-C) cancels the run, waits until its child is gone, and raises on."""
    handle = start_profile(request, **kwargs)
    try:
        return handle.wait(poll_s=poll_s, on_progress=on_progress)
    except BaseException:
        handle.cancel("cancelled: interrupted")
        raise


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
