"""Hostile input, interrupted runs and shared links: every promise the README and docs/scenarios.md ("Safety")
make, tried as a hostile user would. Groups follow the issue:

1. markdown injection from shared links (pages)            6. a user's own device file in every command
2. pages that crashed on bad configs / databases           8. formula and escape injection (CSV, terminal)
3. profiler CLI numbers (--timeout/--steps/--warmup/...)   9. storage edges (read-only, foreign, 0-byte)
4. atomic, versioned, re-importable scenario imports       10. accepted nonsense (conflicting options)
5. tracebacks instead of exit 2 / wrong successes

The random counterpart (every CLI flag, every page's query parameters) is tests/test_fuzz_inputs.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from hostile_helpers import (HOSTILE_TEXT, IMAGE, LINK, PAYLOAD, assert_one_line_error, markdown_links, page_texts,
                             run_cli, write_hostile_files)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
HW_DIR = ROOT / "costmodel" / "assets" / "hardware"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_hostile_files(tmp_path_factory.mktemp("hostile"))


@pytest.fixture()
def db(tmp_path, monkeypatch):
    path = str(tmp_path / "h.db")
    monkeypatch.setenv("COSTMODEL_DB", path)
    return path


def device_file(tmp_path, name="my.json", **changes) -> str:
    spec = json.loads((HW_DIR / "l4-24gb.json").read_text())
    spec.update(id="my-gpu", name="My GPU", source="my own measurements")
    spec.update(changes)
    path = tmp_path / name
    path.write_text(json.dumps(spec))
    return str(path)


# ---- 5. tracebacks instead of exit 2, wrong successes ------------------------------------------------

@pytest.mark.parametrize("argv,field", [
    (["plan-train", "--model", "gpt2", "--tokens", "nan"], "tokens"),
    (["plan-train", "--model", "gpt2", "--tokens", "inf"], "tokens"),
    (["plan-train", "--model", "gpt2", "--tokens", "1e400"], "tokens"),
    (["plan-train", "--model", "gpt2", "--tokens", "1e9", "--epochs", "nan"], "epochs"),
    (["search-layouts", "--model", "gpt2", "--tokens", "nan"], "tokens"),
    (["search-layouts", "--model", "gpt2", "--tokens", "-1"], "tokens"),  # was exit 0
    (["chinchilla", "--flops", "nan"], "flops"),  # was exit 0
    (["chinchilla", "--flops", "inf", "--json"], "flops"),  # printed Infinity (invalid JSON)
    (["plan-serve", "--model", "gpt2", "--batch-sizes", ","], "batch_sizes"),  # printed an empty table
    (["estimate", "--model", "a" * 300], "model"),
    (["estimate", "--model", "a" * 300 + ".json"], "model"),
    (["estimate", "--model", "gpt2", "--hardware", "b" * 300], "hardware"),
    (["scenarios", "show", "99999999999999999999999"], "scenario"),
    (["scenarios", "show", "²"], "scenario"),
    (["measurements", "show", "99999999999999999999999"], "id"),
    (["estimate", "--model", "gpt2", "--batch", "1e400"], "batch"),
    (["estimate", "--model", "gpt2", "--sparsity", "nan"], "sparsity"),
    (["estimate", "--model", "gpt2", "--pue", "inf"], "pue"),
    (["estimate", "--model", "gpt2", "--matmul-efficiency", "nan"], "matmul_efficiency"),
])
def test_bad_flags_are_one_line_exit_2(argv, field, db):
    assert_one_line_error(run_cli(argv), field)


@pytest.mark.parametrize("name,field", [
    ("deep", "model"), ("bigint", "model.n_layer"), ("e999", "model.n_embd"), ("model_type_list", "config.model_type"),
    ("surrogate", "model"), ("n_embd_1e300", "config.n_embd"), ("n_layer_1e18", "config.n_layer"),
    ("vocab_2_62", "config.vocab_size"), ("nan_dropout", "model.resid_pdrop"), ("dropout_5", "config.resid_pdrop"),
    ("duplicate_key", "model"), ("not_json", "model"), ("kv_heads_0", "config.num_key_value_heads"),
    ("experts_0", "config.num_local_experts"), ("fifo", "model"), ("big", "model"),
])
def test_hostile_config_files(files, name, field, db):
    """Config files go through the one safe reader: depth, number range, encoding, duplicate keys, regular
    files only (a FIFO is refused at once, never waited on), size; then the importer checks types and ranges."""
    line = assert_one_line_error(run_cli(["estimate", "--model", files[name]]), field)
    if name == "fifo":
        assert "not a regular file" in line
    # the same file as a device file: the same reader, the same one-line errors
    if name in ("deep", "bigint", "e999", "surrogate", "fifo", "big", "duplicate_key"):
        assert_one_line_error(run_cli(["plan-serve", "--model", "gpt2", "--hardware", files[name]]), "hardware")


def test_a_folder_or_device_is_not_a_config(tmp_path, db):
    assert_one_line_error(run_cli(["estimate", "--model", str(tmp_path)]), "model")
    assert_one_line_error(run_cli(["estimate", "--model", "/dev/zero"]), "model")  # never read whole


def test_profile_set_and_timeouts_fail_before_any_child(db):
    for argv, field in ((["--set", "n_layer=1e999"], "set.n_layer"), (["--set", "n_layer=NaN"], "set.n_layer"),
                        (["--set", "=3"], "set"), (["--set", "\x1b[31m=3"], "set"), (["--timeout", "nan"], "timeout"),
                        (["--timeout", "inf"], "timeout"), (["--timeout", "0"], "timeout"), (["--steps", "nan"], "steps"),
                        (["--steps", "1.5"], "steps"), (["--warmup", "-1"], "warmup"), (["--threads", "0"], "threads"),
                        (["--threads", "²"], "threads")):
        line = assert_one_line_error(run_cli(["profile", "--model", "gpt2", *argv]), field)
        assert "\x1b" not in line
    assert_one_line_error(run_cli(["probe", "--timeout", "nan"]), "timeout")
    assert_one_line_error(run_cli(["probe", "--threads", "x"]), "threads")


def test_bad_user_hardware_folder_does_not_stop_other_commands(tmp_path, monkeypatch, db):
    from costmodel.catalog import ENV_DIRS

    (tmp_path / "bad.json").write_text("{bad")
    monkeypatch.setenv(ENV_DIRS, str(tmp_path))
    rc, out, err = run_cli(["hardware"])
    assert rc == 0 and "h100-sxm-80gb" in out
    assert err.startswith("note: ") and "bad.json" in err
    assert run_cli(["estimate", "--model", "gpt2"])[0] == 0
    line = assert_one_line_error(run_cli(["estimate", "--model", "gpt2", "--hardware", "nope"]), "hardware")
    assert "bad.json" in line  # the unknown id names the file that was skipped


# ---- 6. a user's own device file in every command ------------------------------------------------------

COMMANDS = (["estimate", "--model", "gpt2", "--json"], ["plan-train", "--model", "gpt2", "--tokens", "1e9", "--json"],
            ["plan-serve", "--model", "gpt2", "--json"], ["search-layouts", "--model", "gpt2", "--tokens", "1e9",
                                                          "--max-devices", "8", "--json"])


def _price(cmd: str, doc):
    if cmd == "estimate":
        return doc["assumptions"]["cost"]["usd_per_gpu_hour"]["value"]
    if cmd == "plan-train":
        return doc["cost"]["assumptions"]["usd_per_gpu_hour"]["value"]
    if cmd == "plan-serve":
        return doc["assumptions"]["usd_per_device_hour"]
    return None if doc[0]["cost_usd"] is None else doc[0]["cost_usd"] / doc[0]["gpu_hours"]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: a[0])
def test_device_file_with_a_new_id_works_everywhere(argv, tmp_path, db):
    unpriced, priced = device_file(tmp_path), device_file(tmp_path, "priced.json", usd_per_device_hour=2.5)
    rc, out, err = run_cli([*argv, "--hardware", unpriced])
    assert rc == 0, err
    assert _price(argv[0], json.loads(out)) is None  # "no price", never another device's
    rc, out, err = run_cli([*argv, "--hardware", priced])
    assert rc == 0, err
    assert _price(argv[0], json.loads(out)) == pytest.approx(2.5)


def test_device_file_reusing_a_catalog_id_replaces_the_record(tmp_path, db):
    a100 = json.loads((HW_DIR / "a100-sxm-80gb.json").read_text())
    path = tmp_path / "a100.json"
    path.write_text(json.dumps({**a100, "tdp_w": 123.0, "idle_w": 10.0}))
    rc, out, err = run_cli(["estimate", "--model", "gpt2", "--hardware", str(path), "--json"])
    assert rc == 0 and "replaces the catalog" in err and err.startswith("note: ")
    cost = json.loads(out)["assumptions"]["cost"]
    assert cost["tdp_w"]["value"] == 123.0  # its own power
    assert cost["usd_per_gpu_hour"]["value"] is None  # not the catalog A100's price
    rc, out, err = run_cli(["estimate", "--model", "gpt2", "--hardware", "a100-sxm-80gb", "--json"])
    assert rc == 0 and err == "" and json.loads(out)["assumptions"]["cost"]["usd_per_gpu_hour"]["value"] > 0
    # a flag price still wins, for files and the catalog alike
    rc, out, _ = run_cli(["estimate", "--model", "gpt2", "--hardware", str(path), "--usd-per-device-hour", "3",
                          "--json"])
    assert json.loads(out)["assumptions"]["cost"]["usd_per_gpu_hour"]["value"] == 3.0


@pytest.mark.parametrize("price", [-1, 0, "2.5", True, 1e7])
def test_bad_device_price_names_the_field(price, tmp_path, db):
    path = device_file(tmp_path, usd_per_device_hour=price)
    assert_one_line_error(run_cli(["estimate", "--model", "gpt2", "--hardware", path]), "hardware.usd_per_device_hour")


# ---- 10. accepted nonsense: one rule, refuse with the reason ---------------------------------------------

@pytest.mark.parametrize("argv,field", [
    (["estimate", "--model", "gpt2", "--task", "infer", "--optimizer", "sgd"], "optimizer"),
    (["estimate", "--model", "gpt2", "--task", "infer", "--optimizer", "adamw"], "optimizer"),
    (["estimate", "--model", "gpt2", "--task", "infer", "--lora-rank", "8", "--lora-targets", "c_attn"], "lora_rank"),
    (["estimate", "--model", "gpt2", "--task", "infer", "--grad-checkpointing"], "grad_checkpointing"),
    (["estimate", "--model", "gpt2", "--task", "infer", "--bitfit"], "bitfit"),
    (["estimate", "--model", "gpt2", "--kv-cache-precision", "int8"], "kv_cache_precision"),
    (["estimate", "--model", "gpt2", "--lora-rank", "65536", "--lora-targets", "c_attn"], "lora_rank"),
    (["plan-train", "--model", "gpt2", "--tokens", "1e9", "--global-batch", "3", "--dp", "2"], "global_batch"),
    (["plan-train", "--model", "gpt2", "--tokens", "1e9", "--task", "infer"], "task"),
    (["scenarios", "save", "--name", "x", "--model", "gpt2", "--task", "infer", "--grad-checkpointing"],
     "grad_checkpointing"),
])
def test_conflicting_options_are_refused_with_the_reason(argv, field, db):
    line = assert_one_line_error(run_cli(argv), field)
    assert len(line) > len(f"error: {field}: ") + 20  # says why


def test_the_rule_holds_in_the_api_and_scenario_files():
    import costmodel
    from costmodel.errors import InputError
    from costmodel.scenario import validate_scenario

    for fields_, name in (({"optimizer": "sgd"}, "optimizer"), ({"grad_checkpointing": True}, "grad_checkpointing"),
                          ({"lora_rank": 4}, "lora_rank"), ({"bitfit": True}, "bitfit")):
        with pytest.raises(InputError) as e:
            costmodel.Workload(task="infer", **fields_)
        assert e.value.field == name
        with pytest.raises(InputError) as e:
            validate_scenario({"name": "x", "model": "gpt2", "workload": {"task": "infer", **fields_}})
        assert e.value.field == f"workload.{name}"
    # what an export of an inference scenario holds (the field's default) is still read back
    w = costmodel.Workload(task="infer")
    assert costmodel.Workload.from_dict(w.to_dict()) == w
    costmodel.estimate("gpt2", task="train", lora_rank=768, lora_targets="c_attn")  # the limit itself is fine


# ---- 4. imports: all or nothing, versions, regular files, re-importable exports -----------------------------

def test_import_is_all_or_nothing(tmp_path, db):
    from costmodel.storage import Store
    from costmodel.ui.report import export_json

    Store(db).save_scenario("b", {"model": "gpt2", "notes": "keep me"})
    f = tmp_path / "three.json"
    f.write_text(export_json([{"name": n, "model": "gpt2"} for n in ("a", "b", "c")]))
    line = assert_one_line_error(run_cli(["scenarios", "import", str(f)]), "name")
    assert "nothing was imported" in line
    assert [r["name"] for r in Store(db).list_scenarios()] == ["b"]  # not a, not c
    assert Store(db).load_scenario("b")["notes"] == "keep me"
    doubled = json.loads(f.read_text())
    doubled["scenarios"][2] = doubled["scenarios"][0]
    f.write_text(json.dumps(doubled))
    assert "twice" in assert_one_line_error(run_cli(["scenarios", "import", str(f), "--overwrite"]), "name")
    assert [r["name"] for r in Store(db).list_scenarios()] == ["b"]
    f.write_text(export_json([{"name": n, "model": "gpt2"} for n in ("a", "b", "c")]))
    rc, out, err = run_cli(["scenarios", "import", str(f), "--overwrite"])
    assert rc == 0, err
    assert [r["name"] for r in Store(db).list_scenarios()] == ["a", "b", "c"]


def test_a_later_invalid_scenario_stops_the_whole_import(tmp_path, db):
    from costmodel.storage import Store
    from costmodel.ui.report import export_json

    doc = json.loads(export_json([{"name": "ok", "model": "gpt2"}, {"name": "bad", "model": "gpt2"}]))
    doc["scenarios"][1]["scenario"]["workload"]["batch"] = -1
    f = tmp_path / "mixed.json"
    f.write_text(json.dumps(doc))
    assert_one_line_error(run_cli(["scenarios", "import", str(f)]), "workload.batch")
    assert Store(db).list_scenarios() == []


@pytest.mark.parametrize("version,ok", [(1, True), ("99", False), ("1", False), (99, False), (0, False), (True, False),
                                        (1.0, False), (None, False), ("missing", False)])
def test_format_version_must_be_a_known_whole_number(version, ok, tmp_path, db):
    from costmodel.ui.report import export_json

    doc = json.loads(export_json({"name": "v", "model": "gpt2"}))
    if version == "missing":
        del doc["format_version"]
    else:
        doc["format_version"] = version
    f = tmp_path / "v.json"
    f.write_text(json.dumps(doc))
    result = run_cli(["scenarios", "import", str(f)])
    if ok:
        assert result[0] == 0, result[2]
    else:
        assert_one_line_error(result, "import.format_version")


def test_import_refuses_a_fifo_without_waiting(files, db):
    line = assert_one_line_error(run_cli(["scenarios", "import", files["fifo"]], timeout_s=10), "file")
    assert "not a regular file" in line
    assert_one_line_error(run_cli(["scenarios", "import", files["big"]]), "file")


def test_exports_with_huge_integers_in_results_import_again(tmp_path, db):
    from costmodel.storage import Store
    from costmodel.ui.report import export_json, import_scenarios

    doc = json.loads(export_json({"name": "huge", "model": "gpt2"}))
    doc["results"]["params"]["total"] = 2**70  # e.g. a 2^24-wide, 2^24-layer config's parameter count
    text = json.dumps(doc)
    assert import_scenarios(text)[0]["name"] == "huge"
    f = tmp_path / "huge.json"
    f.write_text(text)
    assert run_cli(["scenarios", "import", str(f)])[0] == 0
    assert Store(db).load_scenario("huge")["model"] == "gpt2"
    doc["scenario"]["plan"] = {"tokens": 2**70}  # the scenario part keeps the +-2**63 rule
    from costmodel.errors import InputError

    with pytest.raises(InputError) as e:
        import_scenarios(json.dumps(doc))
    assert e.value.field == "import.scenario"


# ---- 9. storage edges ---------------------------------------------------------------------------------

def _digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_foreign_sqlite_files_are_refused_unchanged(tmp_path):
    made = {}
    for name, sql in (("other.db", ["CREATE TABLE t (x)"]), ("app.db", ["PRAGMA application_id = 1234",
                                                                         "CREATE TABLE scenarios (x)"]),
                      ("bare.db", ["PRAGMA user_version = 7"])):
        p = tmp_path / name
        conn = sqlite3.connect(p)
        for q in sql:
            conn.execute(q)
        conn.commit()
        conn.close()
        made[name] = _digest(p)
    for name in made:
        for argv in (["scenarios", "list"], ["scenarios", "save", "--name", "x", "--model", "gpt2"],
                     ["measurements", "list"], ["calibrate", "--list"]):
            line = assert_one_line_error(run_cli([*argv, "--db", str(tmp_path / name)]), "db")
            assert "not costmodel's" in line
        assert _digest(tmp_path / name) == made[name]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(made)  # no -wal, -shm or journal either


def test_costmodel_databases_carry_the_application_id(tmp_path):
    from costmodel.storage import APPLICATION_ID, SCHEMA_VERSION, Store

    Store(tmp_path / "new.db").save_scenario("a", {"model": "gpt2"})
    conn = sqlite3.connect(tmp_path / "new.db")
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("new.db")) == []  # no temp file left


def test_zero_byte_fifo_and_junk_databases_are_reported(tmp_path, files):
    (tmp_path / "zero.db").touch()
    (tmp_path / "junk.db").write_bytes(b"not sqlite at all" * 100)
    for path, words in ((tmp_path / "zero.db", "0 bytes"), (files["fifo"], "not a regular file"),
                        (tmp_path / "junk.db", "not a database"), (tmp_path, "folder")):
        line = assert_one_line_error(run_cli(["scenarios", "list", "--db", str(path)], timeout_s=10), "db")
        assert words in line, line
    assert (tmp_path / "zero.db").stat().st_size == 0


def _read_only_runner(folder: Path):
    """A way to run the CLI where ``folder`` cannot be written: a read-only bind mount in a private mount
    namespace (``unshare``), or plain permissions when not root."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        for f in folder.iterdir():
            f.chmod(0o444)
        return lambda argv: subprocess.run([sys.executable, "-m", "costmodel", *argv], cwd=ROOT, capture_output=True,
                                           text=True, timeout=120)
    unshare = shutil.which("unshare")
    probe = subprocess.run([unshare or "unshare", "-rm", "true"], capture_output=True) if unshare else None
    if probe is None or probe.returncode != 0:
        pytest.skip("root without a private mount namespace: cannot make a read-only folder here")

    def run(argv):
        inner = (f"mount --bind {folder} {folder} && mount -o remount,ro,bind {folder} {folder} && "
                 f"exec {sys.executable} -m costmodel " + " ".join(f"'{a}'" for a in argv))
        return subprocess.run([unshare, "-rm", "sh", "-c", inner], cwd=ROOT, capture_output=True, text=True,
                              timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return run


def test_read_only_database_reads_work_and_writes_say_so(tmp_path):
    from costmodel.storage import Store

    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "c.db"
    Store(db).save_scenario("one", {"model": "gpt2", "notes": "from a read-only mount"})
    before = _digest(db)
    run = _read_only_runner(folder)
    try:
        listed = run(["scenarios", "list", "--db", str(db)])
        assert listed.returncode == 0 and "one" in listed.stdout, listed.stderr
        shown = run(["scenarios", "show", "one", "--db", str(db)])
        assert shown.returncode == 0 and "from a read-only mount" in shown.stdout, shown.stderr
        assert run(["measurements", "list", "--db", str(db)]).returncode == 0
        saved = run(["scenarios", "save", "--name", "two", "--model", "gpt2", "--db", str(db)])
        assert saved.returncode == 2 and saved.stderr.count("\n") == 1 and "read-only" in saved.stderr, saved.stderr
    finally:
        folder.chmod(0o755)
        db.chmod(0o644)
    assert _digest(db) == before


# ---- 8. formula and escape injection ------------------------------------------------------------------

FORMULAS = ['=HYPERLINK("http://evil.example","x")', "@SUM(A1:A2)", "+1+1", "-1+1", "\t=1", "\r=1"]


def test_csv_exports_never_start_a_cell_with_a_formula():
    import csv
    import io

    from costmodel.ui import tables
    from costmodel.ui.report import export_csv
    from costmodel.ui.safe_text import csv_cell

    for f in FORMULAS:
        assert csv_cell(f) == "'" + f.replace("\r", "\n")
    assert csv_cell(-1.5) == -1.5 and csv_cell("plain") == "plain" and csv_cell("a\r=1") == "a\n=1"
    scenarios = [{"name": f, "model": "gpt2", "notes": f} for f in FORMULAS]
    for text in (export_csv(scenarios), tables.to_csv([{"setting": f, "time_s": 1.0} for f in FORMULAS])):
        for row in csv.reader(io.StringIO(text, newline="")):
            assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row), row
    assert "'=HYPERLINK" in export_csv(scenarios)


def test_terminal_output_has_no_escape_codes(db):
    from costmodel.storage import Store

    evil = "\x1b]8;;http://evil.example\x07click\x1b]8;;\x07 \x1b[2J\u202egnp.exe \x9b31m"
    # names refuse control characters; notes and a config's model name keep them
    cfg = {"model_type": "gpt2", "n_layer": 2, "_name_or_path": evil}
    Store(db).save_scenario("evil", {"model": cfg, "notes": evil})
    name = "evil"
    for argv in (["scenarios", "list"], ["scenarios", "show", name], ["scenarios", "list", "--json"],
                 ["scenarios", "show", name, "--json"]):
        rc, out, err = run_cli(argv)
        assert rc == 0, err
        assert not any(c in out for c in "\x1b\x07\x9b\u202e"), (argv, out[:300])
    for argv in (["estimate", "--model", "gpt2", "--lora-rank", "4", "--lora-targets", "\x1b[31mred\x1b[0m"],
                 ["profile", "--model", "gpt2", "--set", "\x1b[2J=1"], ["scenarios", "show", "\x1b[2Jnope"]):
        line = assert_one_line_error(run_cli(argv))
        assert "\x1b" not in line and "\x9b" not in line


def test_printable_never_fails_on_lone_surrogates():
    from costmodel.cli.output import printable

    assert printable("a\udcffb\x1b[0m") == "a?b[0m"


# ---- 1. text is data: the markdown helper ---------------------------------------------------------------

@pytest.mark.parametrize("text", HOSTILE_TEXT)
def test_md_renders_user_text_literally(text):
    from costmodel.ui.safe_text import ZWSP, md

    out = md(text)
    assert markdown_links(out) == [], out
    assert markdown_links(f"**field** (from the link): {out}") == []
    assert "\n" not in out
    from markdown_it import MarkdownIt

    shown = MarkdownIt("commonmark").renderInline(out)
    import html

    plain = html.unescape(shown).replace(ZWSP, "")
    expected = re.sub(r"[\t\n\r]+", " ", text).replace("\x1b", "").replace("\u202e", "")
    assert plain == expected


def test_md_keeps_field_names_readable():
    from costmodel.ui.safe_text import md

    for name in ("hist_device", "workload.batch", "hardware.hw_mem_gib", "new_name", "a100-sxm-80gb"):
        assert md(name) == name


# ---- 1 and 2. pages: injection links and crashing inputs (AppTest) ---------------------------------------

def open_page(page: str, query: dict):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "costmodel_dashboard" / "app.py"), default_timeout=90)
    at.run()
    for k, v in query.items():
        at.query_params[k] = v
    at.switch_page(f"app_pages/{page}")
    at.run()
    return at


def assert_no_links_from(at, marker: str = "evil.example"):
    assert not at.exception, [e.value for e in at.exception]
    for text in page_texts(at):
        bad = [x for x in markdown_links(text) if marker in x or "127.0.0.1:9" in x or "beacon" in x]
        assert not bad, (bad, text[:300])


INJECTIONS = [  # (page, the link's query) from the issue
    ("plan_serving.py", {"also": PAYLOAD}),
    ("estimate.py", {"preset": PAYLOAD, "precision": LINK, "optimizer": IMAGE, "pruning": PAYLOAD, "task": "infer"}),
    ("estimate.py", {"lora_rank": "8", "lora_targets": PAYLOAD}),
    ("compare.py", {"gpus": PAYLOAD, "mode": "gpus"}),
    ("compare.py", {"mode": "settings", "group": PAYLOAD}),
    ("plan_training.py", {"provider": PAYLOAD, "region": LINK}),
    ("profile.py", {"hist_device": PAYLOAD, "hist_model": LINK}),
    ("learn.py", {"topic": PAYLOAD}),
    ("learn.py", {"topic": "flops", "model": PAYLOAD}),
    ("learn.py", {"topic": "distillation", "teacher": PAYLOAD}),
    ("estimate.py", {"source": "paste", "config": json.dumps({"model_type": "gpt2", "n_layer": 2,
                                                              "_name_or_path": PAYLOAD})}),
]


@pytest.mark.parametrize("page,query", INJECTIONS, ids=[f"{p}:{','.join(q)}" for p, q in INJECTIONS])
def test_shared_links_cannot_inject_links_or_images(page, query, db):
    at = open_page(page, query)
    assert_no_links_from(at)
    assert any("evil" in t for t in page_texts(at)), "the bad value is named (as text)"


def test_stored_scenario_name_opened_in_estimate_is_text(db):
    from costmodel.storage import Store
    from costmodel.ui import page_state

    cfg = {"model_type": "gpt2", "n_layer": 2, "_name_or_path": PAYLOAD}
    Store(db).save_scenario("evil config", {"model": cfg})
    at = open_page("estimate.py", page_state.state_from_scenario(Store(db).load_scenario("evil config")))
    assert_no_links_from(at)
    assert any("Session expired" in s.value for s in at.subheader)


@pytest.mark.parametrize("config,field", [
    ({"model_type": ["gpt2"]}, "config.model_type"),
    ({"model_type": "gpt2", "n_embd": 1e300}, "config.n_embd"),
    ({"model_type": "gpt2", "n_layer": 1e18}, "config.n_layer"),
    ({"model_type": "gpt2", "vocab_size": 2**62}, "config.vocab_size"),
    ({"model_type": "gpt2", "vocab_size": 2**64}, "config.vocab_size"),
])
def test_pasted_configs_are_error_boxes_not_crashes(config, field, db):
    at = open_page("estimate.py", {"source": "paste", "config": json.dumps(config)})
    assert not at.exception, [e.value for e in at.exception]
    assert any(e.value.startswith(f"**{field}**") for e in at.error), [e.value for e in at.error]


def test_profile_page_with_a_bad_database_is_an_error_box(tmp_path, monkeypatch):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 50)
    monkeypatch.setenv("COSTMODEL_DB", str(junk))
    at = open_page("profile.py", {})
    assert not at.exception, [e.value for e in at.exception]
    assert any(e.value.startswith("**db**") for e in at.error)
    monkeypatch.setenv("COSTMODEL_DB", str(tmp_path))  # a folder
    at = open_page("scenarios.py", {})
    assert not at.exception and any(e.value.startswith("**db**") for e in at.error)
