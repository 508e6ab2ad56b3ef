"""``python -m costmodel profile``: run real steps on this machine and print measured next to predicted.
``python -m costmodel calibrate``: fit this device's time-model efficiency to its stored runs.

``python -m costmodel gpu-check``: the acceptance checks for a first GPU user (``costmodel.profiler.gpucheck``).

Registered through ``costmodel.cli.SUBCOMMAND_MODULES``. Exit status of ``profile``: 0 when the run was measured,
1 when it ended otherwise (refused, timeout, oom, killed, error, cancelled -- Ctrl-C / SIGTERM cancel the run and
free the device at once: the message says which), 2 for bad input.
``calibrate``: 0 when a calibration was fitted, 2 when there is nothing to fit (the message says why).
"""

from __future__ import annotations

import json
import math
import re
import sys

from ..cli.output import dumps, printable
from ..errors import InputError
from ..extras import require


def register(sub) -> None:
    from ..cli.args import add_workload_args

    p = sub.add_parser("profile", help="run real training/inference steps here and compare with the estimate")
    add_workload_args(p)
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--steps", default=3, help="measured steps (after the warm-up)")
    p.add_argument("--warmup", default=1, help="unmeasured warm-up steps")
    p.add_argument("--timeout", default=600, help="hard limit in seconds for the whole run (model build included)")
    p.add_argument("--threads", default=None, help="torch intra-op threads in the child (default: torch's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="replace a config key before building, e.g. --set n_layer=2 (JSON values; repeatable)")
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP counters")
    p.add_argument("--no-fvcore", action="store_true", help="skip fvcore (TorchScript tracing)")
    p.add_argument("--recount-flops", action="store_true", help="count FLOPs again instead of reusing the counts of "
                   "an earlier run with the same config, workload, device and versions")
    p.add_argument("--calibrated", action="store_true",
                   help="predict with this device's latest stored calibration (costmodel.storage)")
    p.add_argument("--save", action="store_true", help="save the run in the costmodel database")
    p.add_argument("--db", default=None, help="SQLite file (default: $COSTMODEL_DB or ~/.costmodel/costmodel.db)")
    p.add_argument("--out", default=None, help="also write the run record as JSON into this folder")
    p.set_defaults(run=run)

    c = sub.add_parser("calibrate", help="fit this device's time efficiency to its stored profiler runs")
    c.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (this machine's device), or the stored "
                   "device name of the runs to fit (see `--list`)")
    c.add_argument("--db", default=None, help="SQLite file (default: $COSTMODEL_DB or ~/.costmodel/costmodel.db)")
    c.add_argument("--list", action="store_true", help="list the devices with stored runs and exit")
    c.add_argument("--dry-run", action="store_true", help="fit and print, but do not store the calibration")
    c.add_argument("--json", action="store_true", help="print the calibration record as JSON")
    c.set_defaults(run=run_calibrate)

    pr = sub.add_parser("probe", help="microbenchmark this device (GEMM rate, copy bandwidth, host time per call) "
                        "and derive the time model's efficiency from it, without running a model")
    pr.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    pr.add_argument("--threads", default=None, help="torch intra-op threads in the child (default: torch's)")
    pr.add_argument("--hardware", default=None, help="catalog record the fractions are relative to (default: the "
                    "record matching the GPU, or cpu-generic)")
    pr.add_argument("--timeout", default=180, help="hard limit in seconds for the child")
    pr.add_argument("--save", action="store_true", help="store it as this device's calibration (later predictions "
                    "with --calibrated and `calibrate` fits start from it)")
    pr.add_argument("--db", default=None, help="SQLite file (default: $COSTMODEL_DB or ~/.costmodel/costmodel.db)")
    pr.add_argument("--json", action="store_true", help="print the calibration record as JSON")
    pr.add_argument("--collectives", action="store_true", help="measure all-reduce / all-gather / reduce-scatter bus "
                    "bandwidth over message sizes on --world-size local ranks (NCCL on GPUs, gloo on CPU); --save "
                    "stores the fitted link for plan-train/search-layouts --link-calibration")
    pr.add_argument("--world-size", default=None, help="ranks for --collectives (default: every visible GPU, or 2 on "
                    "CPU)")
    pr.set_defaults(run=run_probe_cmd)

    g = sub.add_parser("gpu-check", help="acceptance checks on this machine's GPUs (device mapping, smoke profile, "
                       "GPT-2 / Llama-2-7B vs a reference, FLOP paths, probe, energy, locks, 2-GPU data parallel)")
    g.add_argument("--out", default=None, help="folder for the JSON + Markdown result (default benchmarks/results)")
    g.add_argument("--dry-run", action="store_true", help="run every check's logic on CPU at tiny sizes (no GPU "
                   "needed); the GPU-only checks say they were skipped")
    g.add_argument("--budget", default=480, help="total time budget in seconds (default 480)")
    g.add_argument("--only", default=None, help="comma-separated check names to run (default: all)")
    g.set_defaults(run=run_gpu_check)

    h = sub.add_parser("measurements", help="stored profiler runs: list (filter by device/model) or show one")
    h.add_argument("action", choices=["list", "show"], help="list | show")
    h.add_argument("id", nargs="?", default=None, help="measurement id (show)")
    h.add_argument("--device", default=None, help="only this stored device name (see `calibrate --list`)")
    h.add_argument("--model", default=None, help="only this stored model name")
    h.add_argument("--db", default=None, help="SQLite file (default: $COSTMODEL_DB or ~/.costmodel/costmodel.db)")
    h.add_argument("--json", action="store_true", help="print JSON")
    h.set_defaults(run=run_measurements)


def _int(value, field: str, lo: int, hi: int) -> int:
    from ..cli.args import int_arg

    return int_arg(field, value, lo, hi)


_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,99}")


def _overrides(items: list[str]) -> dict:
    """``--set KEY=VALUE`` items: VALUE is JSON when it parses as JSON (through ``costmodel.safe_json``, so NaN,
    infinities and huge integers are refused) and plain text otherwise."""
    from ..safe_json import parse_json_value

    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError("set", f"expected KEY=VALUE, got {item[:80]!r}")
        if not _KEY.fullmatch(key):
            raise InputError("set", f"the key must be a config key name (letters, digits, _ . -, at most 100), "
                                    f"got {key[:60]!r}")
        try:
            json.loads(raw)
        except ValueError:  # not JSON (a bare word such as gelu_new): the text itself
            if len(raw) > 10_000:
                raise InputError(f"set.{key}", "must be at most 10,000 characters") from None
            try:
                raw.encode("utf-8")
            except UnicodeEncodeError:
                raise InputError(f"set.{key}", "is not valid Unicode text (a non-UTF-8 byte)") from None
            out[key] = raw
        except RecursionError:
            raise InputError(f"set.{key}", "is nested too deeply") from None
        else:
            out[key] = parse_json_value(raw, field=f"set.{key}")
    return out


def request_from_args(args):
    from ..cli.args import workload_from_args
    from .request import ProfileRequest

    from .proc import check_timeout

    timeout = check_timeout(args.timeout, "timeout")
    return ProfileRequest(
        model=args.model, workload=workload_from_args(args).to_dict(), device=args.device,
        steps=_int(args.steps, "steps", 1, 10000), warmup=_int(args.warmup, "warmup", 0, 1000), timeout_s=timeout,
        hardware=args.hardware, config_overrides=_overrides(args.overrides), count_flops=not args.no_flops,
        fvcore=not args.no_fvcore, threads=None if args.threads is None else _int(args.threads, "threads", 1, 4096),
        flops_cache=not getattr(args, "recount_flops", False),
    )


def run(args) -> int:
    require("profile")
    from .compare import format_table
    from .proc import Interrupted, on_signals, signal_name
    from .runner import start_profile

    req = request_from_args(args)
    store = None
    if args.save or args.calibrated:
        from ..storage import Store

        store = Store(args.db)

    def show(p):
        if not args.json:
            step = f" {p['step']}/{p['of']}" if "step" in p else ""
            print(f"[{p.get('elapsed_s', 0):7.1f} s] {p.get('stage')}{step}: {p.get('message', '')}", file=sys.stderr)

    # the store is read for the calibration (--calibrated) and written only with --save
    with on_signals():
        handle = None
        try:
            handle = start_profile(req, efficiency="calibrated" if args.calibrated else None, calibration_store=store,
                                   store=store if args.save else None, json_dir=args.out)
            res = handle.wait(poll_s=0.05, on_progress=show)
        except (KeyboardInterrupt, Interrupted) as exc:
            sig = getattr(exc, "signum", 2)
            reason = f"cancelled by {signal_name(sig)}" + (" (Ctrl-C)" if sig == 2 else "")
            if handle is None:
                print(f"{reason} before the run started", file=sys.stderr)
                return 1
            res = handle.cancel(reason)  # kills the child's group; the device lock is free when this returns
    if args.json:
        print(dumps(res.to_dict()))
    else:
        env = res.environment
        print(printable(f"{res.model} on {res.device or args.device} ({args.task}): {res.status} -- {res.message}"))
        if res.comparison:
            print(f"predicted with hardware {res.predicted.get('hardware')} "
                  f"(efficiency: {res.predicted.get('efficiency_source')})")
            print(format_table(res.comparison))
        for n in res.notes:
            print(f"note: {printable(n)}")
        if env.get("torch"):
            print(f"environment: torch {env.get('torch')}, python {env.get('python')}, {env.get('cpu')}"
                  + (f", {env.get('gpu')} driver {env.get('driver')} CUDA {env.get('cuda')}" if env.get("gpu") else ""))
        t = res.measured.get("timing") or {}
        if t:
            print(f"time: {t.get('wall_s', 0):.2f} s wall = set-up {t.get('setup_s', 0):.2f} s (torch import "
                  f"{t.get('torch_import_s', 0):.2f}, build {t.get('build_s', 0):.2f}, optimizer "
                  f"{t.get('optimizer_s', 0):.2f}, warm-up {t.get('warmup_s', 0):.2f}) + measured steps "
                  f"{t.get('measured_s', 0):.3f} s + extra passes {t.get('passes_s', 0):.2f} s + process start/exit")
        if res.status != "ok" and res.stderr_tail:
            print("child log (tail):\n" + res.stderr_tail[-1500:], file=sys.stderr)
    return 0 if res.ok else 1


def _resolve_device(text: str) -> str:
    """A device of this machine (cpu, cuda, cuda:N) becomes the name its runs are stored under."""
    from .env import device_label
    from .request import _DEVICE

    return device_label(text) if _DEVICE.match(text or "") else (text or "").strip()


def _efficiency_lines(cal: dict, before: str, after: str, mark: str) -> list[str]:
    """The Efficiency fields of a calibration record, before and after, as aligned text lines."""
    from .calibrate import efficiency_rows

    lines = [f"{'efficiency field':<20s} {'unit':<18s} {before:>10s} {after:>10s}"]
    for r in efficiency_rows(cal):
        lines.append(f"{r['field']:<20s} {r['unit']:<18s} {r['before']:>10.4g} {r['after']:>10.4g}"
                     + (f"  ({mark})" if r["fitted"] else ""))
    return lines


def format_calibration(cal: dict) -> str:
    """Plain text: the fitted fields before -> after, the error of each stored time before and after."""
    lines = [f"calibration of {cal['device']}: {cal['n_runs']} run(s), {cal['n_points']} time(s); "
             f"RMS log error {cal['rmse_log_before']:.3f} -> {cal['rmse_log_after']:.3f} "
             f"(typical factor {math.exp(cal['rmse_log_before']):.2f}x -> {math.exp(cal['rmse_log_after']):.2f}x)",
             "", *_efficiency_lines(cal, "before", "after", "fitted"),
             "", f"{'model':<34s} {'task':<6s} {'quantity':<17s} {'measured s':>11s} {'before':>9s} {'after':>9s}"]
    for r in cal["rows"]:
        lines.append(f"{str(r['model'])[:34]:<34s} {str(r['task']):<6s} {r['quantity']:<17s} {r['measured_s']:>11.4g} "
                     f"{r['error_before_pct']:>+8.1f}% {r['error_after_pct']:>+8.1f}%")
    return "\n".join(lines)


def run_calibrate(args) -> int:
    from ..storage import Store
    from .calibrate import calibrate_device

    store = Store(args.db)
    if args.list:
        counts: dict[str, int] = {}
        for r in store.list_measurements():
            counts[r.get("device") or "?"] = counts.get(r.get("device") or "?", 0) + 1
        if args.json:
            print(dumps(counts))
        else:
            for dev, n in sorted(counts.items()):
                print(f"{n:5d} run(s)  {printable(dev)}")
            if not counts:
                print("no stored runs: `python -m costmodel profile ... --save` stores one")
        return 0
    device = _resolve_device(args.device)
    if not store.list_measurements(device=device):
        known = sorted({r.get("device") for r in store.list_measurements() if r.get("device")})
        raise InputError("device", f"no stored runs of {device!r} in {store.path}; store some with "
                         f"`python -m costmodel profile ... --save`" + (f" (devices with runs: {', '.join(known)})"
                                                                          if known else ""))
    cal = calibrate_device(store, device, save=not args.dry_run)
    if args.json:
        print(dumps(cal))
    else:
        print(format_calibration(cal))
        print("\n" + ("not stored (--dry-run)" if args.dry_run else
                      f"stored as calibration {cal.get('id')}: `python -m costmodel profile ... --calibrated` "
                      "and the Profile page use it"))
    return 0


def format_probe(cal: dict) -> str:
    units = {"FLOP/s": (1e12, "TFLOP/s"), "bytes/s": (1e9, "GB/s"), "s": (1e-6, "us")}
    lines = [f"probe of {cal['device']} (fractions relative to {cal['hardware']})", "",
             f"{'quantity':<26s} {'measured':>14s} {'datasheet':>14s} {'fraction':>9s}"]
    for r in cal["probe_rows"]:
        k, unit = units.get(r["unit"], (1.0, r["unit"]))
        ds = "-" if r["datasheet"] is None else f"{r['datasheet'] / k:.4g} {unit}"
        fr = "-" if r["fraction"] is None else f"{r['fraction']:.4f}"
        lines.append(f"{r['quantity']:<26s} {r['measured'] / k:>9.4g} {unit:<4s} {ds:>14s} {fr:>9s}")
    lines += ["", *_efficiency_lines(cal, "default", "probe", "measured")]
    return "\n".join(lines)


def run_probe_cmd(args) -> int:
    require("profile")
    from .env import default_hardware
    from .probe import probe_calibration, run_probe

    from .proc import Interrupted, check_timeout, on_signals, signal_name
    from .request import _DEVICE

    timeout = check_timeout(args.timeout, "timeout")
    threads = None if args.threads is None else _int(args.threads, "threads", 1, 4096)
    if not _DEVICE.match(args.device or ""):
        raise InputError("device", f"must be cpu, cuda or cuda:N, got {args.device!r}")
    label = _resolve_device(args.device)
    hardware = args.hardware or default_hardware(args.device, label)
    if args.collectives:
        return _probe_collectives(args, timeout, threads, hardware, on_signals, Interrupted, signal_name)
    with on_signals():
        try:
            measured = run_probe(args.device, threads=threads, timeout_s=timeout)
        except RuntimeError as exc:
            print(f"probe failed: {exc}", file=sys.stderr)
            return 1
        except (KeyboardInterrupt, Interrupted) as exc:
            print(f"probe cancelled by {signal_name(getattr(exc, 'signum', 2))}; the child was stopped", file=sys.stderr)
            return 1
    cal = probe_calibration(measured, hardware, label)
    if args.save:
        from ..storage import Store

        cal["id"] = Store(args.db).save_calibration(label, cal)
    if args.json:
        print(dumps(cal))
    else:
        print(format_probe(cal))
        if args.save:
            print(f"\nstored as calibration {cal['id']} of {label}: `profile --calibrated` predicts with it and "
                  "`calibrate` fits start from it")
    return 0


def _probe_collectives(args, timeout, threads, hardware, on_signals, Interrupted, signal_name) -> int:
    from ..catalog import load_hardware
    from .collectives_probe import format_collectives, run_collectives_probe

    device = "cuda" if args.device.startswith("cuda") else "cpu"
    if args.world_size is None:
        if device == "cuda":
            from .gpus import visible_devices

            world = max(2, len(visible_devices()["devices"]))
        else:
            world = 2
    else:
        world = _int(args.world_size, "world_size", 2, 64)
    load_hardware(hardware)  # an unknown --hardware is an input error before any rank starts
    with on_signals():
        try:
            res = run_collectives_probe(world, device, hardware=hardware, threads=threads, timeout_s=timeout)
        except (KeyboardInterrupt, Interrupted) as exc:
            print(f"probe cancelled by {signal_name(getattr(exc, 'signum', 2))}; the ranks were stopped", file=sys.stderr)
            return 1
    if res["status"] == "refused":
        raise InputError(*res["message"].split(": ", 1)) if ": " in res["message"] else InputError("probe", res["message"])
    if res["status"] != "ok":
        print(f"probe --collectives {res['status']}: {res['message']}", file=sys.stderr)
        return 1
    cal = res["summary"].get("calibration")
    if args.save and cal:
        from ..storage import Store

        res["stored_id"] = Store(args.db).save_link_calibration(hardware, cal)
    if args.json:
        print(dumps(res))
    else:
        print(format_collectives(res))
        if args.save and cal:
            print(f"\nstored as link calibration {res['stored_id']} of {hardware}: plan-train / search-layouts "
                  f"--hardware {hardware} --link-calibration latest use it")
        elif args.save:
            print("\nnothing stored: no link could be fitted")
    return 0


def run_measurements(args) -> int:
    from ..storage import Store
    from .compare import format_table, history_rows

    store = Store(args.db)
    if args.action == "show":
        if args.id is None:
            raise InputError("id", "give the measurement id to show (see `measurements list`)")
        rec = store.get_measurement(_int(args.id, "id", 1, 2**62))
        if args.json:
            print(dumps(rec))
        else:
            print(printable(f"measurement {rec['id']} saved {rec.get('created_at')}: {rec.get('model')} "
                            f"{rec.get('task')} on {rec.get('device')} ({rec.get('status')}) workload "
                            f"{json.dumps(rec.get('workload'))}"))
            if rec.get("comparison"):
                print(format_table(rec["comparison"]))
        return 0
    rows = history_rows(store.list_measurements(device=args.device, model=args.model))
    if args.json:
        print(dumps(rows))
        return 0
    if not rows:
        print("no stored runs match" + ("" if args.device is None and args.model is None else " the filter"))
        return 0

    def pct(v):
        return "-" if v is None else f"{v:+.1f}%"

    def sec(v):
        return "-" if v is None else f"{v:.4g}"

    print(f"{'id':>5s}  {'saved':<16s}  {'task':<5s} {'batch':>5s}  {'time s':>9s}  {'time err':>8s}  "
          f"{'peak err':>8s}  model / device")
    for r in rows:
        t = r["step_s"] if r["task"] == "train" else (r["prefill_s"] or r["forward_s"])
        e = r["step_err_pct"] if r["task"] == "train" else (r["prefill_err_pct"] if r["prefill_err_pct"] is not None
                                                           else r["forward_err_pct"])
        print(f"{r['id']:>5d}  {r['saved']:<16s}  {str(r['task']):<5s} {str(r['batch']):>5s}  {sec(t):>9s}  "
              f"{pct(e):>8s}  {pct(r['peak_err_pct']):>8s}  {printable(r['model'])} / {printable(r['device'])}")
    return 0


def run_gpu_check(args) -> int:
    require("profile")
    from .gpucheck import main

    return main(args)
