"""``python -m costmodel profile``: run real steps on this machine and print measured next to predicted.

Registered through ``costmodel.cli.SUBCOMMAND_MODULES``. Exit status: 0 when the run was measured,
1 when it ended otherwise (refused, timeout, oom, error, cancelled: the message says which), 2 for bad input.
"""

from __future__ import annotations

import json
import sys

from ..errors import InputError


def register(sub) -> None:
    from ..cli import _add_workload_args

    p = sub.add_parser("profile", help="run real training/inference steps here and compare with the estimate")
    _add_workload_args(p)
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--steps", default=3, help="measured steps (after the warm-up)")
    p.add_argument("--warmup", default=1, help="unmeasured warm-up steps")
    p.add_argument("--timeout", default=600, help="hard limit in seconds for the whole run (model build included)")
    p.add_argument("--threads", default=None, help="torch intra-op threads in the child (default: torch's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="replace a config key before building, e.g. --set n_layer=2 (JSON values; repeatable)")
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP counters")
    p.add_argument("--no-fvcore", action="store_true", help="skip fvcore (TorchScript tracing)")
    p.add_argument("--calibrated", action="store_true",
                   help="predict with this device's latest stored calibration (costmodel.storage)")
    p.add_argument("--save", action="store_true", help="save the run in the costmodel database")
    p.add_argument("--out", default=None, help="also write the run record as JSON into this folder")
    p.set_defaults(run=run)


def _int(value, field: str, lo: int, hi: int) -> int:
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise InputError(field, f"must be a whole number from {lo} to {hi}, got {value!r}") from None
    if not lo <= v <= hi:
        raise InputError(field, f"must be from {lo} to {hi}, got {v}")
    return v


def _overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise InputError("set", f"expected KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def request_from_args(args):
    from ..cli import workload_from_args
    from .request import ProfileRequest

    try:
        timeout = float(args.timeout)
    except (TypeError, ValueError):
        raise InputError("timeout", f"must be a number of seconds, got {args.timeout!r}") from None
    return ProfileRequest(
        model=args.model, workload=workload_from_args(args).to_dict(), device=args.device,
        steps=_int(args.steps, "steps", 1, 10000), warmup=_int(args.warmup, "warmup", 0, 1000), timeout_s=timeout,
        hardware=args.hardware, config_overrides=_overrides(args.overrides), count_flops=not args.no_flops,
        fvcore=not args.no_fvcore, threads=None if args.threads is None else _int(args.threads, "threads", 1, 4096),
    )


def run(args) -> int:
    from .compare import format_table
    from .runner import run_profile

    req = request_from_args(args)
    store = None
    if args.save or args.calibrated:
        from ..storage import Store

        store = Store()

    def show(p):
        if not args.json:
            step = f" {p['step']}/{p['of']}" if "step" in p else ""
            print(f"[{p.get('elapsed_s', 0):7.1f} s] {p.get('stage')}{step}: {p.get('message', '')}", file=sys.stderr)

    res = run_profile(req, on_progress=show, efficiency="calibrated" if args.calibrated else None,
                      store=store if args.save else None, json_dir=args.out)
    if args.json:
        print(json.dumps(res.to_dict(), indent=1))
    else:
        env = res.environment
        print(f"{res.model} on {res.device or args.device} ({args.task}): {res.status} -- {res.message}")
        if res.comparison:
            print(f"predicted with hardware {res.predicted.get('hardware')} "
                  f"(efficiency: {res.predicted.get('efficiency_source')})")
            print(format_table(res.comparison))
        for n in res.notes:
            print(f"note: {n}")
        if env.get("torch"):
            print(f"environment: torch {env.get('torch')}, python {env.get('python')}, {env.get('cpu')}"
                  + (f", {env.get('gpu')} driver {env.get('driver')} CUDA {env.get('cuda')}" if env.get("gpu") else ""))
        if res.status != "ok" and res.stderr_tail:
            print("child log (tail):\n" + res.stderr_tail[-1500:], file=sys.stderr)
    return 0 if res.ok else 1
