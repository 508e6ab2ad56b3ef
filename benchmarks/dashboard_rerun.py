"""Dashboard reruns with the layout search on (issue 17): Plan training, Mixtral-8x7B on H100s, layout search up to
1,024 devices, in Streamlit's AppTest (in-process; its times include AppTest's own overhead of serialising and
parsing every element, so they are an upper bound on what the server spends).

Measured: the first run of the page (the search computed), reruns with nothing changed, reruns after a change
the search does not depend on (the layout's data-parallel size: the plan and the scaling sweep change, the search
stays), reruns after toggling the search's ranking (time / cost, each computed once, then cached), and a second
session opening the same page (another AppTest: the page caches are per process, shared by every session).
Median and max over ``--repeats`` reruns each. Targets: change < 300 ms, nothing changed < 50 ms.

    .venv/bin/python benchmarks/dashboard_rerun.py [--repeats 7] [--out benchmarks/results/dashboard_rerun.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from bench_report import emit, machine_line

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "costmodel_dashboard" / "app.py")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(ROOT))

QUERY = {"preset": "mixtral-8x7b", "hw": "h100-sxm-80gb", "seq": "4096", "global_batch": "1024", "dp": "64",
         "tp": "4", "pp": "1", "zero": "1", "micro_batch": "1", "max_devices": "1024", "search": "1"}


def open_page():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=300)
    at.run()  # st.navigation registers the pages' URL paths on the first run; switch after it
    for k, v in QUERY.items():
        at.query_params[k] = v
    at.switch_page("app_pages/plan_training.py")
    t0 = time.perf_counter()
    at.run()
    assert not at.exception, at.exception
    return at, time.perf_counter() - t0


def timed(at, n: int, change=None) -> list[float]:
    out = []
    for i in range(n):
        if change is not None:
            change(at, i)
        t0 = time.perf_counter()
        at.run()
        out.append(time.perf_counter() - t0)
        assert not at.exception, at.exception
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", help="also write the table to this Markdown file")
    a = ap.parse_args()
    at, first = open_page()
    n = a.repeats
    rows = [("first run (search computed)", [first])]
    rows.append(("rerun, nothing changed", timed(at, n)))
    dps = [32, 16, 128, 64]
    rows.append(("rerun after a change the search does not use (dp)",
                 timed(at, n, lambda at, i: at.number_input(key="plan_training.dp").set_value(dps[i % len(dps)]))))
    ranks = ["cost", "time"]
    rows.append(("rerun after a ranking toggle (time / cost)",
                 timed(at, n, lambda at, i: at.radio(key="plan_training.rank_by").set_value(ranks[i % 2]))))
    _, second = open_page()
    rows.append(("another session opens the same page", [second]))
    lines = ["# Dashboard reruns with the layout search on (benchmarks/dashboard_rerun.py)", "",
             f"{machine_line()}. Plan training, Mixtral-8x7B on "
             "H100-SXM-80GB, seq 4,096, global batch 1,024, layout search up to 1,024 devices (include the unfit), "
             f"AppTest, {n} reruns each. Targets: after a change < 300 ms; nothing changed < 50 ms.", "",
             "| rerun | median ms | max ms |", "|---|---|---|"]
    for name, ts in rows:
        lines.append(f"| {name} | {1e3 * statistics.median(ts):.0f} | {1e3 * max(ts):.0f} |")
    emit(lines, a.out)


if __name__ == "__main__":
    main()
