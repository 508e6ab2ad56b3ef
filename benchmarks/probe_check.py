"""How far the device probe alone (no model run), and the probe plus ONE profiled run, predict the measured times
of a profiler suite on this machine.

    .venv/bin/python benchmarks/probe_check.py [--suite benchmarks/results/profile_cpu_small_*.json] [--threads N]

Runs ``costmodel.profiler.probe`` here (so run it on the machine that measured the suite), then prints:
1. every stored time predicted with the hardware defaults, with the probe's efficiency, and after a fit to all
   runs (in-sample, for reference), with the RMS log error of each column;
2. calibrating from ONE run at a time (``fit_efficiency``, what ``python -m costmodel calibrate`` runs), starting
   from the defaults or from the probe, scored on every OTHER run's times.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from costmodel.catalog import load_hardware  # noqa: E402
from costmodel.perf import Efficiency, default_efficiency  # noqa: E402
from costmodel.profiler.calibrate import _Predictor, _usable, fit_efficiency  # noqa: E402
from costmodel.profiler.probe import probe_efficiency, run_probe  # noqa: E402


def pct(p, m):
    return 100.0 * (p - m) / m


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    files = sorted(glob.glob(str(ROOT / "benchmarks/results/profile_cpu_small_*.json")))
    ap.add_argument("--suite", default=files[-1] if files else None)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args(argv)
    suite = json.loads(Path(a.suite).read_text())
    runs = _usable(suite["runs"])
    hw_id = (runs[0].get("predicted") or {}).get("hardware") or "cpu-generic"
    hw = load_hardware(hw_id)
    base = default_efficiency(hw)
    measured = run_probe("cpu", threads=a.threads, timeout_s=300)
    probe_eff, rows, _ = probe_efficiency(measured, hw)
    print(f"suite: {Path(a.suite).name} ({len(runs)} runs); hardware record {hw.id}\n")
    print("## Probe\n")
    print("| quantity | measured | datasheet | fraction |\n|---|---|---|---|")
    for r in rows:
        ds = "-" if r["datasheet"] is None else f"{r['datasheet']:.4g}"
        fr = "-" if r["fraction"] is None else f"{r['fraction']:.4f}"
        print(f"| {r['quantity']} | {r['measured']:.4g} {r['unit']} | {ds} | {fr} |")
    full = Efficiency(**fit_efficiency(runs, base=base)["efficiency"])
    pred = _Predictor(runs)
    cols = {"defaults": base, "probe": probe_eff, "fit to all runs": full}
    preds = {k: pred.predict(e) for k, e in cols.items()}
    print("\n## Every stored time\n")
    print("| run | quantity | measured s | " + " | ".join(cols) + " |\n|---|---|---|" + "---|" * len(cols))
    for i, it in enumerate(pred.items):
        r, key, meas = it[0], it[4], it[5]
        print(f"| {str(r.get('model')).split(' (')[0]} {r.get('task')} | {key} | {meas:.4g} | "
              + " | ".join(f"{pct(preds[k][i], meas):+.0f}%" for k in cols) + " |")
    print("| RMS log error | | | " + " | ".join(f"{math.sqrt(pred.loss(e)):.3f}" for e in cols.values()) + " |")

    print("\n## Calibrating from ONE run, scored on the other runs (median abs error / RMS log error)\n")
    print("| calibration run | from defaults | from probe |\n|---|---|---|")
    summary = {"from defaults": [], "from probe": []}
    for i, r in enumerate(runs):
        others = [x for j, x in enumerate(runs) if j != i]
        po = _Predictor(others)
        cells = []
        for name, start in (("from defaults", base), ("from probe", probe_eff)):
            eff = Efficiency(**fit_efficiency([r], base=start)["efficiency"])
            p = po.predict(eff)
            med = statistics.median(abs(pct(a_, it[5])) for a_, it in zip(p, po.items))
            rms = math.sqrt(po.loss(eff))
            summary[name].append(rms)
            cells.append(f"{med:.0f}% / {rms:.2f}")
        print(f"| {str(r.get('model')).split(' (')[0]} {r.get('task')} | " + " | ".join(cells) + " |")
    print("| median over calibration runs (RMS log) | " + " | ".join(
        f"{statistics.median(v):.2f}" for v in summary.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
