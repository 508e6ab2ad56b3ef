"""Fuzz every CLI command's flags and every page's query parameters (hypothesis, fixed seed).

CLI: the argparse tree of ``costmodel.cli.build_parser()`` is walked, so a new command or flag is fuzzed without
editing this file. Each attempt runs ``costmodel.cli.main(argv)`` in this process and must exit 0 or 2, with
exactly one ``error: ...`` line on stderr for 2 (only ``note: ...`` lines for 0), strict JSON for ``--json``, no
traceback and no hang. Where valid input would start a child process (``profile``, ``probe``), the child is
replaced by a sentinel: reaching it counts as a pass (the flags were accepted).

Pages: each page is opened (AppTest) with hostile values for all of its query keys (found by recording the
defaults each page gives ``PageState``), then with hypothesis-drawn values: no exception element, and no link
or image made from user text in any markdown the page shows.

``FUZZ_EXAMPLES`` / ``FUZZ_PAGE_EXAMPLES`` raise the number of attempts (e.g. for a long local run); the counts of
attempts and failures are printed (``pytest -s``) and written to ``$COSTMODEL_FUZZ_COUNTS`` when set.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from hostile_helpers import HOSTILE_TEXT, markdown_links, page_texts, run_cli, write_hostile_files

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.fuzz
CLI_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "1000"))
PAGE_EXAMPLES = int(os.environ.get("FUZZ_PAGE_EXAMPLES", "40"))
COUNTS: dict[str, int] = {"cli_attempts": 0, "cli_failures": 0, "cli_reached_child": 0, "cli_exit_0": 0,
                          "cli_exit_2": 0, "page_attempts": 0, "page_failures": 0}


ERROR_FIELDS: dict[str, int] = {}  # which field the exit-2 attempts named (how widely the fuzz reached)


def _report_counts():
    print(f"\nfuzz counts: {json.dumps(COUNTS)}")
    print(f"fields named by the exit-2 attempts: {json.dumps(dict(sorted(ERROR_FIELDS.items(), key=lambda kv: -kv[1])))}")
    out = os.environ.get("COSTMODEL_FUZZ_COUNTS")
    if out:
        Path(out).write_text(json.dumps(COUNTS, indent=1))


# ---- the parser, walked -------------------------------------------------------------------------------

def commands() -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    from costmodel.cli import build_parser

    out = []

    def walk(parser, path):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            out.append((tuple(path), parser))
            return
        for name, sp in subs[0].choices.items():
            walk(sp, [*path, name])

    walk(build_parser(), [])
    return out


NUMBERS = ["1", "2", "8", "64", "0", "-1", "0.5", "1e3", "1e6", "nan", "NaN", "inf", "-inf", "1e400", "1e-400",
           "99999999999999999999999", "1_000", "²", "٣", "0x10", "", " ", "1,2", "true"]
HOSTILE = [*HOSTILE_TEXT, "", "-", "--", "/dev/zero", "/dev/null", "\udcff", "\x00", "nan", "1e400", "%s%n", "{}",
           "[]", "null", "a" * 5000]
# flags that name a file costmodel may CREATE or WRITE: they only ever get paths inside the fuzz folder (hostile
# names there, never a path that climbs out of it), and the fuzz runs with that folder as its working directory
WRITES = ("db", "output", "out")


class ChildWouldStart(Exception):
    """Raised instead of starting a profiler child: the command accepted its input."""


@pytest.fixture(scope="module")
def fuzz_env(tmp_path_factory):
    """Files and databases the fuzzed flags may name, all in one temporary folder."""
    d = tmp_path_factory.mktemp("fuzz")
    files = write_hostile_files(d)
    from costmodel.models import get_preset
    from costmodel.storage import Store
    from costmodel.ui.report import export_json

    (d / "gpt2-small").mkdir()
    (d / "gpt2-small" / "config.json").write_text(json.dumps({**get_preset("gpt2").config, "n_layer": 2}))
    hw = json.loads((ROOT / "costmodel/assets/hardware/l4-24gb.json").read_text())
    (d / "dev.json").write_text(json.dumps({**hw, "id": "fuzz-gpu", "usd_per_device_hour": 1.5}))
    (d / "dev_catalog_id.json").write_text(json.dumps({**hw, "tdp_w": 50.0, "idle_w": 5.0}))
    good_db = str(d / "good.db")
    Store(good_db).save_scenarios([{"name": "one", "model": "gpt2"}, {"name": "two", "model": "llama-3-8b",
                                    "hardware": "l4-24gb", "workload": {"task": "infer", "precision": "int4"}},
                                   {"name": "=cmd|' /C calc'!A0", "model": "gpt2", "notes": "\x1b[2Jhi"}])
    (d / "export.json").write_text(export_json({"name": "imported", "model": "gpt2"}))
    (d / "zero.db").touch()
    (d / "junk.db").write_bytes(b"junk" * 300)
    conn = sqlite3.connect(d / "foreign.db")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    # hostile paths join the hostile pool of every flag (a path where a number belongs is hostile too)
    bad_paths = [*files.values(), str(d / "zero.db"), str(d / "junk.db"), str(d / "foreign.db"), str(d),
                 str(d / "no" / "such" / "dir" / "x.db"), str(d / "missing" / "x.csv")]
    HOSTILE.extend(bad_paths)
    safe_names = [str(d / "w" / n.replace("/", "_").replace("\x00", "").replace(".", "_")[:100])
                  for n in HOSTILE_TEXT + NUMBERS if n.strip()]
    env = {"_write_bad": bad_paths + safe_names, "_dir": str(d),
        "model": ["gpt2", "bert-base", "llama-3-8b", "mixtral-8x7b", "t5-small", "vit-base", "resnet-50",
                  "lstm-2x1024", str(d / "gpt2-small" / "config.json")],
        "hardware": ["h100-sxm-80gb", "a100-sxm-80gb", "l4-24gb", "cpu-generic", "tpu-v5e", str(d / "dev.json"),
                     str(d / "dev_catalog_id.json")],
        "db": [good_db, good_db, str(d / "new.db")],
        "file": [str(d / "export.json"), "-"],
        "output": [str(d / "out.txt")],
        "out": [str(d / "runs")],
        "name": ["one", "two", "imported", "1", "=cmd|' /C calc'!A0"],
        "names": ["one", "two", "=cmd|' /C calc'!A0"],
        "new_name": ["three", "four", "x" * 120],
        "task": ["train", "infer"], "precision": ["fp32", "amp-bf16", "bf16", "fp16", "fp8", "int8", "int4"],
        "optimizer": ["adamw", "sgd", "adafactor", "adamw-8bit"],
        "kv_cache_precision": ["fp8", "int8", "bf16"], "attention": ["fused", "eager"],
        "sparsity_pattern": ["unstructured", "2:4"], "engine": ["eager", "compiled"],
        "tier": ["on-demand", "spot", "purchase", "reserved-3y"], "region": ["world", "france", "us-east-1"],
        "provider": ["aws", "gcp", "lambda"], "rank_by": ["time", "cost"], "format": ["csv", "json", "html"],
        "device": ["cpu", "cpu", "cuda"], "lora_targets": ["c_attn", "q_proj,v_proj", "all-linear"],
        "batch_sizes": ["1,2,4", "8", "1,,2"], "action": ["list", "show"], "id": ["1", "2"],
        "overrides": ["n_layer=2", "activation_function=gelu", "n_embd=64"],
        "plan": ['{"num_gpus": 8}', '{"tokens": 1e9}'], "assumptions": ['{"efficiency": {"matmul": 0.5}}'],
        "notes": ["n", "\x1b[31m", PAYLOAD_SAFE],
        "batch": ["1", "2", "8"], "seq": ["128", "512", "2048"], "prompt": ["128", "512"], "generate": ["1", "64"],
        "lora_rank": ["0", "8", "16"], "sparsity": ["0", "0.5"], "tokens": ["1e9", "2e12"], "samples": ["1e6"],
        "epochs": ["1", "3"], "global_batch": ["8", "64", "1024"], "dp": ["1", "2", "8"], "tp": ["1", "2"],
        "pp": ["1", "2"], "cp": ["1"], "ep": ["1", "2"], "zero": ["0", "1", "3"], "max_devices": ["8", "64"],
        "top": ["3", "10"], "flops": ["1e21", "1e24"], "pue": ["1.1", "1.5"], "utilization": ["0.5", "1"],
        "matmul_efficiency": ["0.5"], "bandwidth_efficiency": ["0.7"], "overhead_us": ["10"],
        "usd_per_device_hour": ["2.5"], "image_size": ["224", "64"], "steps": ["2"], "warmup": ["1"],
        "timeout": ["60"], "threads": ["1", "2"], "server_port": ["8501", "65535"],
        "server_address": ["127.0.0.1", "0.0.0.0"],
    }
    return env


PAYLOAD_SAFE = HOSTILE_TEXT[0]


def checkout_listing():
    """The checkout's top level, less the caches pytest and hypothesis create there as the session runs."""
    return sorted(set(os.listdir(ROOT)) - {".pytest_cache", ".hypothesis"})


@pytest.fixture()
def no_children(monkeypatch):
    def refuse(*a, **k):
        raise ChildWouldStart()

    import costmodel.profiler.probe as probe
    import costmodel.profiler.proc as proc
    import costmodel.profiler.runner as runner

    monkeypatch.setattr(runner, "run_profile", refuse)
    monkeypatch.setattr(runner, "start_profile", refuse)
    monkeypatch.setattr(probe, "run_probe", refuse)
    # every child process of the profiler starts here: a command that gets past the ones above never runs a model
    monkeypatch.setattr(proc, "spawn", refuse)
    import costmodel.cli.dashboard as dashboard

    monkeypatch.setattr(dashboard, "launch", refuse)  # `costmodel dashboard` would start a server


GOOD_NUMBERS = ["1", "2", "4", "8", "16", "0.5", "1e3", "1e9", "0"]


def _values(env: dict, dest: str, mode: str):
    good = st.sampled_from(env.get(dest, GOOD_NUMBERS))
    if mode == "clean":
        return good
    if dest in WRITES:  # only paths inside the fuzz folder
        bad = st.sampled_from(env["_write_bad"])
    else:
        bad = st.one_of(st.sampled_from(HOSTILE), st.sampled_from(NUMBERS), st.text(max_size=8))
    if mode == "mostly":
        return st.one_of(*([good] * 6), bad)
    return st.one_of(good, bad)


def _argv(data, env, path, parser) -> list[str]:
    # how hostile this attempt is: clean values only, mostly clean, or anything
    mode = data.draw(st.sampled_from(["clean", "mostly", "hostile"]), label="mode")
    argv = list(path)
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if not action.option_strings:  # positional
            n = 1 if action.nargs in (None, 1) else (data.draw(st.integers(1, 2)) if action.nargs == "+" else
                                                      data.draw(st.integers(0, 1)))
            if action.required or n:
                argv += [data.draw(_values(env, action.dest, mode)) for _ in range(max(n, 1 if action.required else 0))]
            continue
        flag = action.option_strings[-1] if len(action.option_strings) == 1 else \
            data.draw(st.sampled_from(action.option_strings))
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            if data.draw(st.booleans()):
                argv.append(flag)
        elif action.required or data.draw(st.integers(0, 3)) == 0:
            for _ in range(data.draw(st.integers(1, 2)) if isinstance(action, argparse._AppendAction) else 1):
                value = data.draw(_values(env, action.dest, mode))
                argv += [f"{flag}={value}"] if value.startswith("-") else [flag, value]
    if mode != "clean" and data.draw(st.integers(0, 9)) == 0:  # now and then something argparse must refuse
        argv.insert(data.draw(st.integers(0, len(argv))), data.draw(st.sampled_from(["--bogus", "-x", "extra"])))
    return argv


def _check(argv, result):
    rc, out, err = result
    if isinstance(rc, ChildWouldStart):
        COUNTS["cli_reached_child"] += 1
        return
    assert isinstance(rc, int), f"{argv!r} raised {type(rc).__name__}: {rc}"
    assert rc in (0, 2), (argv, rc, err[-500:])
    assert "Traceback" not in err, (argv, err[-2000:])
    lines = err.splitlines()
    if rc == 2:
        COUNTS["cli_exit_2"] += 1
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err[-2000:])
        field = lines[0][len("error: "):].split(":")[0][:40]
        ERROR_FIELDS[field] = ERROR_FIELDS.get(field, 0) + 1
    else:
        COUNTS["cli_exit_0"] += 1
        assert all(line.startswith("note: ") for line in lines), (argv, err[-2000:])
        if "--json" in argv:
            def refuse(name):
                raise AssertionError(f"{name} in --json output of {argv!r}")

            json.loads(out, parse_constant=refuse)  # strict JSON: no NaN / Infinity


@settings(max_examples=CLI_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzz_every_cli_command(data, fuzz_env, no_children, monkeypatch_module):
    path, parser = data.draw(st.sampled_from(commands()), label="command")
    argv = _argv(data, fuzz_env, path, parser)
    stdin = data.draw(st.sampled_from([b"", b"{", (ROOT / "costmodel/assets/seeds.json").read_bytes()[:2000],
                                       Path(fuzz_env["file"][0]).read_bytes()]))
    assert not any(a.startswith(("../", "/etc", "/usr", "/work")) for a in argv if isinstance(a, str))
    COUNTS["cli_attempts"] += 1
    before = checkout_listing()  # the fuzz must leave the checkout as it found it
    try:
        _check(argv, run_cli(argv, stdin=stdin, timeout_s=60))
        assert checkout_listing() == before, f"{argv!r} wrote into the checkout"
    except AssertionError:
        COUNTS["cli_failures"] += 1
        raise


def test_every_command_was_fuzzed():
    """The walk finds every subcommand (a new one is fuzzed automatically); this pins that it finds them."""
    names = {" ".join(p) for p, _ in commands()}
    assert {"estimate", "plan-train", "plan-serve", "search-layouts", "chinchilla", "profile", "probe", "calibrate",
            "measurements", "scenarios import", "scenarios export", "presets", "hardware"} <= names


@pytest.fixture(scope="module")
def monkeypatch_module(tmp_path_factory):
    """The fuzzed commands' default database and profiler folder: temporary (never ~/.costmodel)."""
    mp = pytest.MonkeyPatch()
    d = tmp_path_factory.mktemp("fuzzhome")
    mp.chdir(d)  # a relative path a fuzzed flag names lands here, never in the checkout
    mp.setenv("HOME", str(d))
    mp.setenv("COSTMODEL_DB", str(d / "default.db"))
    mp.setenv("COSTMODEL_PROFILER_DIR", str(d / "profiler"))
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.delenv("COSTMODEL_HARDWARE_DIR", raising=False)
    yield mp
    mp.undo()
    _report_counts()


# ---- pages ------------------------------------------------------------------------------------------

PAGES = ["estimate.py", "compare.py", "plan_training.py", "plan_serving.py", "profile.py", "learn.py", "scenarios.py",
         "home.py"]


def _open(page: str, query: dict):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "costmodel_dashboard" / "app.py"), default_timeout=120)
    at.run()
    for k, v in query.items():
        at.query_params[k] = v
    at.switch_page(f"app_pages/{page}")
    at.run()
    return at


@pytest.fixture(scope="module")
def page_keys(tmp_path_factory):
    """page file -> the query keys (and defaults) it reads, recorded from PageState as each page runs."""
    import costmodel_dashboard.app_pages._widgets as widgets

    seen: dict[str, dict] = {}
    original = widgets.PageState.__init__

    def record(self, page, defaults, *args, **kwargs):
        seen[page] = dict(defaults)
        original(self, page, defaults, *args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(widgets.PageState, "__init__", record)
    mp.setenv("COSTMODEL_DB", str(tmp_path_factory.mktemp("pagekeys") / "k.db"))
    out = {}
    try:
        for page in PAGES:
            seen.clear()
            _open(page, {})
            out[page] = seen.get(page[:-3], {})  # (the app's home page records its own state first)
    finally:
        mp.undo()
    return out


def test_page_keys_are_found(page_keys):
    assert {"also", "provider", "tp"} <= set(page_keys["plan_serving.py"])
    assert {"preset", "precision", "optimizer", "pruning", "lora_targets", "config"} <= set(page_keys["estimate.py"])
    assert {"topic", "model", "teacher"} <= set(page_keys["learn.py"])
    assert {"hist_device", "hist_model"} <= set(page_keys["profile.py"])


def _assert_page_ok(page, query, at):
    COUNTS["page_attempts"] += 1
    try:
        assert not at.exception, (page, query, [e.value for e in at.exception])
        for text in page_texts(at):
            links = [x for x in markdown_links(text) if any(m in x for m in ("evil", "127.0.0.1:9", "beacon"))]
            assert not links, (page, query, links, text[:300])
    except AssertionError:
        COUNTS["page_failures"] += 1
        raise


def _hostile_value(default, i: int) -> str:
    """The i-th hostile value for a key with this default (numbers get numeric junk too)."""
    pool = HOSTILE_TEXT + ["nan", "inf", "-1", "1e400", "0", "99999999999999999999999", ""]
    return pool[i % len(pool)]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_key_with_hostile_values(page, page_keys, tmp_path, monkeypatch):
    """Every key of the page at once, with each class of hostile value (links, HTML, escapes, numbers...)."""
    monkeypatch.setenv("COSTMODEL_DB", str(tmp_path / "p.db"))
    keys = page_keys[page] or {"x": ""}
    for i in (0, 1, 3, 7, 10, 12):
        query = {k: _hostile_value(v, i + j) for j, (k, v) in enumerate(keys.items())}
        _assert_page_ok(page, query, _open(page, query))


@settings(max_examples=PAGE_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzz_page_query_parameters(data, page_keys, tmp_path_factory, monkeypatch_module):
    page = data.draw(st.sampled_from(PAGES), label="page")
    keys = page_keys[page]
    query = {}
    for k, default in keys.items():
        if data.draw(st.integers(0, 2)) == 0:
            continue
        typed = [str(default), "1", "0", "-3", "0.5", "1e9"] if isinstance(default, (int, float)) else \
            ["gpt2", "llama-3-8b", "infer", "train", "h100-sxm-80gb", "int4", "paste", "build", "settings", "lora"]
        query[k] = data.draw(st.one_of(st.sampled_from(typed), st.sampled_from(HOSTILE_TEXT + NUMBERS),
                                       st.text(max_size=30)), label=k)
    _assert_page_ok(page, query, _open(page, query))
