"""Where the wall time of ``python -m costmodel profile --model <smallest preset> --device cpu --steps 3`` goes.

Runs the command ``--runs`` times (fresh profiler and lock directories, so the first run counts FLOPs and later
runs reuse the counts) and prints, per run, the wall time seen from outside and the breakdown the run reports in
``measured["timing"]``: the parent before spawning the child, process start, torch import, model build, optimizer
creation (which imports torch._dynamo), warm-up, the measured steps, the extra passes, and the rest (the parent's
polling and printing, the child's exit).

``--before PATH`` also times another checkout of the repository (e.g. ``git archive <commit> | tar -x -C PATH``),
interleaved with this one so that both see the same machine load; it reports wall time only when that version
has no breakdown.

    .venv/bin/python benchmarks/profile_startup.py --runs 7 --before /tmp/costmodel-before --out benchmarks/results/profile_startup_cpu.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("parent_before_spawn_s", "spawn_to_child_start_s", "torch_import_s", "build_s", "optimizer_s", "warmup_s",
          "measured_s", "passes_s")


def one_run(repo: Path, model: str, prof: Path, locks: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COSTMODEL_PROFILER_DIR": str(prof), "COSTMODEL_LOCK_DIR": str(locks),
           "PYTHONPATH": str(repo)}
    import resource

    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "costmodel", "profile", "--model", model, "--device", "cpu", "--steps",
                          "3", "--json"], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # the CLI and its child (reaped): CPU seconds, load-proof
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    try:
        res = json.loads(out.stdout)
    except json.JSONDecodeError:
        return {"wall_s": wall, "cpu_s": cpu, "status": f"no JSON (exit {out.returncode}): {out.stderr[-300:]}"}
    t = (res.get("measured") or {}).get("timing") or {}
    row = {"wall_s": wall, "cpu_s": cpu, "status": res.get("status"), "cached_flops": "counter_source" in (res.get("measured") or {})}
    row.update({k: t.get(k) for k in PHASES})
    if t:
        known = sum(v for k, v in row.items() if k in PHASES and v)
        row["rest_s"] = wall - known
    return row


def table(rows: list[dict], title: str) -> list[str]:
    cols = ["wall_s", "cpu_s", *PHASES, "rest_s"]
    lines = [f"### {title}", "", "| run | flops | " + " | ".join(c.removesuffix("_s") for c in cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    for i, r in enumerate(rows, 1):
        cells = ["-" if r.get(c) is None else f"{r[c]:.3f}" for c in cols]
        flops = "cached" if r.get("cached_flops") else "counted"
        lines.append(f"| {i} | {flops} | " + " | ".join(cells) + " |")
    warm = [r for r in rows[1:] if r.get("status") == "ok"] or rows
    med = {c: statistics.median([r[c] for r in warm if r.get(c) is not None]) for c in cols
           if any(r.get(c) is not None for r in warm)}
    lo = {c: min(r[c] for r in warm if r.get(c) is not None) for c in med}
    lines.append("| median of runs 2.. | | " + " | ".join(f"{med[c]:.3f}" if c in med else "-" for c in cols) + " |")
    lines.append("| fastest of runs 2.. | | " + " | ".join(f"{lo[c]:.3f}" if c in lo else "-" for c in cols) + " |")
    return lines + [""]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--model", default="mlp-mnist", help="the smallest preset (669,706 parameters)")
    ap.add_argument("--before", default=None, help="another checkout to time, interleaved")
    ap.add_argument("--out", default=None, help="also write the Markdown here")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="profile-startup-"))
    repos = {"this checkout": ROOT}
    if a.before:
        repos = {"before": Path(a.before), "after (this checkout)": ROOT}
    rows: dict[str, list[dict]] = {k: [] for k in repos}
    load0 = os.getloadavg()
    for i in range(a.runs):
        for name, repo in repos.items():
            key = name.split()[0]
            rows[name].append(one_run(repo, a.model, tmp / f"prof-{key}", tmp / f"locks-{key}"))
            r = rows[name][-1]
            print(f"{name:22s} run {i + 1}: {r['wall_s']:.3f} s wall, {r['cpu_s']:.3f} s CPU ({r['status']})",
                  file=sys.stderr)
    load1 = os.getloadavg()
    lines = [f"## `profile --model {a.model} --device cpu --steps 3`: wall time and where it goes", "",
             f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
             f"Python {platform.python_version()}; load average {load0[0]:.2f} before, {load1[0]:.2f} after (a shared "
             "machine: other jobs ran meanwhile). Seconds. Run 1 counts FLOPs; later runs reuse the counts (the "
             "FLOP-count cache). `cpu` = user + system CPU seconds of the command and its child (little affected by "
             "other jobs; the work is mostly single-threaded, so on an idle machine wall ~ cpu). `rest` = wall minus "
             "the listed phases: the parent's own start and polling, the child's exit and the parent's printing.", ""]
    for name, rs in rows.items():
        lines += table(rs, name)
    text = "\n".join(lines)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
