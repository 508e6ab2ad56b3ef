"""Dashboard speed: the rerun time of each page after one widget change (Streamlit AppTest, in-process), and
the app's cold start (a fresh ``streamlit run`` until its health endpoint answers, and a fresh interpreter's first
full run of app.py). Targets (issue 4): < 300 ms per interaction, < 5 s cold start, on the 2-core CI machine.

    .venv/bin/python benchmarks/app_speed.py [--repeats 7]

AppTest times include its own overhead (serialising and parsing every element), so they are an upper bound on
what the server spends per rerun."""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "costmodel_dashboard" / "app.py")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(ROOT))

# page file, its URL state, and the widget to change: (kind, key, values cycled through)
CASES = [
    ("home.py", {}, None),
    ("estimate.py", {"preset": "llama-2-7b", "hw": "a100-sxm-80gb"}, ("number_input", "estimate.batch", [2, 3, 4, 5])),
    ("estimate.py", {"preset": "gpt2"}, ("selectbox", "estimate.precision", ["fp32", "bf16", "amp-fp16", "amp-bf16"])),
    ("compare.py", {"preset": "llama-3-8b"}, ("number_input", "compare.batch", [2, 3, 4, 5])),
    ("compare.py", {"preset": "llama-2-7b", "mode": "settings", "group": "fine-tuning"},
     ("number_input", "compare.seq", [512, 1024, 2048, 4096])),
    ("plan_training.py", {"preset": "gpt2"}, ("number_input", "plan_training.dp", [2, 4, 16, 32])),
    ("plan_serving.py", {"preset": "llama-3-8b", "hw": "l4-24gb"}, ("number_input", "plan_serving.prompt",
                                                                    [256, 2048, 4096, 1024])),
    ("profile.py", {"preset": "gpt2"}, ("number_input", "profile.steps", [2, 4, 5, 3])),
    ("scenarios.py", {}, ("selectbox", "sc.pick", None)),
    ("learn.py", {"topic": "flops"}, ("number_input", "learn.batch", [2, 4, 16, 8])),
    ("learn.py", {"topic": "lora"}, ("slider", "learn.rank", [4, 8, 32, 16])),
]


def _seed_db() -> None:
    from costmodel.storage import Store

    s = Store()
    for name, model in (("gpt2 train", "gpt2"), ("llama 8b", "llama-3-8b")):
        s.save_scenario(name, {"model": model, "hardware": "a100-sxm-80gb"}, overwrite=True)


def rerun_times(repeats: int) -> list[dict]:
    from streamlit.testing.v1 import AppTest

    rows = []
    for page, query, change in CASES:
        at = AppTest.from_file(APP, default_timeout=120)
        at.run()  # st.navigation registers the pages' URL paths on the first run; switch after it
        for k, v in query.items():
            at.query_params[k] = v
        at.switch_page(f"app_pages/{page}")
        t0 = time.perf_counter()
        at.run()
        first = time.perf_counter() - t0
        at.run()  # warm
        times = []
        for i in range(repeats):
            if change is not None:
                kind, key, values = change
                w = getattr(at, kind)(key=key)
                if values is None:
                    opts = list(w.options)
                    w.set_value(opts[i % len(opts)])
                else:
                    w.set_value(values[i % len(values)])
            t0 = time.perf_counter()
            at.run()
            times.append(time.perf_counter() - t0)
            assert not at.exception, (page, at.exception)
        label = page if change is None else f"{page} ({change[1].split('.', 1)[1]})"
        rows.append({"page": label, "first_s": first, "median_ms": 1e3 * statistics.median(times),
                     "max_ms": 1e3 * max(times)})
    return rows


def cold_start_server() -> tuple[float, float]:
    """(seconds until /_stcore/health answers, seconds until the first page's HTML is served)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", APP, "--server.address", "127.0.0.1",
                             "--server.port", str(port), "--server.headless", "true",
                             "--browser.gatherUsageStats", "false"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ})
    health = page = None
    try:
        while time.perf_counter() - t0 < 60:
            try:
                if health is None:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as r:
                        if r.status == 200:
                            health = time.perf_counter() - t0
                if health is not None:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                        r.read()
                        page = time.perf_counter() - t0
                        break
            except OSError:
                time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return health, page


def cold_first_run() -> float:
    """A fresh interpreter: import streamlit + costmodel and run app.py's default page once (AppTest)."""
    code = ("import os,time; t=time.perf_counter(); from streamlit.testing.v1 import AppTest; "
            f"at=AppTest.from_file({APP!r}, default_timeout=120); at.switch_page('app_pages/estimate.py'); at.run(); "
            "assert not at.exception; print(time.perf_counter()-t)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ})
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    os.environ["COSTMODEL_DB"] = str(Path(tmp) / "bench.db")
    os.environ["COSTMODEL_PROFILER_DIR"] = str(Path(tmp) / "profiler")
    _seed_db()
    print(f"cpu cores: {os.cpu_count()}  python {sys.version.split()[0]}")
    health, page = cold_start_server()
    print(f"cold start, streamlit run -> /_stcore/health answers: {health:.2f} s; first page HTML: {page:.2f} s "
          f"(target < 5 s)")
    print(f"cold first run of the Estimate page in a fresh interpreter (imports + script): {cold_first_run():.2f} s")
    rows = rerun_times(args.repeats)
    print(f"\nrerun after one widget change (AppTest, {args.repeats} changes each; target < 300 ms)")
    print(f"{'page (widget)':<36s} {'first run s':>11s} {'median ms':>10s} {'max ms':>8s}")
    for r in rows:
        flag = "" if r["median_ms"] < 300 else "  over target"
        print(f"{r['page']:<36s} {r['first_s']:>11.2f} {r['median_ms']:>10.0f} {r['max_ms']:>8.0f}{flag}")


if __name__ == "__main__":
    main()
