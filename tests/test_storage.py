"""costmodel.storage: CRUD, migrations, concurrency (8 processes), crash safety (SIGKILL mid-write),
export -> import round trip.

References: the expected scenario contents come from ``costmodel.scenario.validate_scenario`` of the
input (the documented normal form); the v1 schema below is written out by hand as SQL, as it shipped,
independent of the migration code; sqlite's own ``PRAGMA integrity_check`` judges the file after a crash.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import sqlite3
import time

import pytest

from costmodel.errors import InputError
from costmodel.scenario import validate_scenario
from costmodel.storage import SCHEMA_VERSION, Store
from support import cli

GPT2 = {"name": "gpt2 small", "model": "gpt2", "workload": {"batch": 8, "seq": 1024, "precision": "fp32"}}


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "t.db")


def _field(exc_info) -> str:
    return exc_info.value.field


# ---- scenarios CRUD -------------------------------------------------------------------------------

def test_save_load_list(store):
    sid = store.save_scenario("gpt2 small", GPT2)
    assert isinstance(sid, int)
    expected = validate_scenario(GPT2)
    assert store.load_scenario("gpt2 small") == expected
    assert store.load_scenario(sid) == expected
    assert store.load_scenario(str(sid)) == expected
    # workload was completed with the Workload defaults, e.g. the optimizer
    assert expected["workload"]["optimizer"] == "adamw" and expected["hardware"] == "h100-sxm-80gb"
    rows = store.list_scenarios()
    assert len(rows) == 1
    row = rows[0]
    assert row["id"] == sid and row["name"] == "gpt2 small"
    assert row["model"] == "gpt2" and row["hardware"] == "h100-sxm-80gb" and row["task"] == "train"
    assert row["created_at"] == row["updated_at"]


def test_name_taken_and_overwrite(store):
    sid = store.save_scenario("a", GPT2)
    with pytest.raises(InputError) as e:
        store.save_scenario("a", GPT2)
    assert _field(e) == "name" and "already exists" in str(e.value)
    changed = {**GPT2, "workload": {**GPT2["workload"], "batch": 2}}
    time.sleep(0.002)
    assert store.save_scenario("a", changed, overwrite=True) == sid
    assert store.load_scenario("a")["workload"]["batch"] == 2
    row = store.list_scenarios()[0]
    assert row["updated_at"] > row["created_at"]


@pytest.mark.parametrize("bad", ["", "   ", "x" * 121, "tab\there", None, 5])
def test_bad_names(store, bad):
    with pytest.raises(InputError) as e:
        store.save_scenario(bad, GPT2)
    assert _field(e) == "name"


def test_rename_duplicate_delete(store):
    store.save_scenario("a", GPT2)
    store.rename_scenario("a", "b")
    assert [r["name"] for r in store.list_scenarios()] == ["b"]
    assert store.load_scenario("b")["name"] == "b"  # the record's own name follows the rename
    new_id = store.duplicate_scenario("b", "c")
    c = store.load_scenario(new_id)
    assert c["name"] == "c" and {**c, "name": "b"} == store.load_scenario("b")
    with pytest.raises(InputError) as e:
        store.rename_scenario("b", "c")
    assert _field(e) == "new_name"
    with pytest.raises(InputError) as e:
        store.duplicate_scenario("b", "c")
    assert _field(e) == "new_name"
    store.delete_scenario("b")
    assert [r["name"] for r in store.list_scenarios()] == ["c"]
    for op in (lambda: store.load_scenario("b"), lambda: store.delete_scenario("b"),
               lambda: store.rename_scenario("b", "z"), lambda: store.load_scenario(999)):
        with pytest.raises(InputError) as e:
            op()
        assert _field(e) == "scenario" and "no scenario named" in str(e.value)


def test_invalid_scenarios_are_not_saved(store):
    cases = {
        "workload.batch": {**GPT2, "workload": {"batch": 0}},
        "workload.colour": {**GPT2, "workload": {"colour": "red"}},
        "model": {**GPT2, "model": "/etc/passwd"},  # a path is never followed
        "hardware": {**GPT2, "hardware": "no-such-gpu"},
        "workload.lora_targets": {**GPT2, "workload": {"lora_rank": 8, "lora_targets": ["nope"]}},
        "plan.num_gpus": {**GPT2, "plan": {"num_gpus": 0}},
        "scenario.extra": {**GPT2, "extra": 1},
    }
    for field, sc in cases.items():
        with pytest.raises(InputError) as e:
            store.save_scenario("x", sc)
        assert _field(e) == field, (field, str(e.value))
    assert store.list_scenarios() == []


# ---- measurements and calibrations ----------------------------------------------------------------

def test_measurements(store):
    a = store.save_measurement({"device": "h100-sxm-80gb", "model": "gpt2", "peak_bytes": 123, "env": {"torch": "2.13"}})
    b = store.save_measurement({"device": "h100-sxm-80gb", "model": "llama-2-7b", "peak_bytes": 456})
    c = store.save_measurement({"device": {"id": "a100-sxm-80gb", "name": "A100"}, "model": "gpt2", "peak_bytes": 7})
    assert a < b < c
    assert [m["id"] for m in store.list_measurements()] == [a, b, c]
    assert [m["id"] for m in store.list_measurements(device="h100-sxm-80gb")] == [a, b]
    assert [m["id"] for m in store.list_measurements(model="gpt2")] == [a, c]
    assert [m["id"] for m in store.list_measurements(device="a100-sxm-80gb", model="gpt2")] == [c]
    assert store.list_measurements(device="t4-16gb") == []
    got = store.get_measurement(a)
    assert got.pop("created_at") and got.pop("id") == a
    assert got == {"device": "h100-sxm-80gb", "model": "gpt2", "peak_bytes": 123, "env": {"torch": "2.13"}}
    with pytest.raises(InputError) as e:
        store.get_measurement(999)
    assert _field(e) == "measurement"
    with pytest.raises(InputError) as e:
        store.save_measurement({"device": "x", "peak_bytes": float("nan")})
    assert _field(e) == "measurement.peak_bytes"
    with pytest.raises(InputError):
        store.save_measurement(["not", "a", "dict"])


def test_calibrations(store):
    assert store.latest_calibration("h100-sxm-80gb") is None
    store.save_calibration("h100-sxm-80gb", {"matmul": 0.6})
    second = store.save_calibration("h100-sxm-80gb", {"matmul": 0.62})
    store.save_calibration("a100-sxm-80gb", {"matmul": 0.5})
    latest = store.latest_calibration("h100-sxm-80gb")
    assert latest["id"] == second and latest["matmul"] == 0.62 and latest["device"] == "h100-sxm-80gb"
    with pytest.raises(InputError) as e:
        store.save_calibration("", {"matmul": 0.6})
    assert _field(e) == "device"


# ---- location, mode, schema -----------------------------------------------------------------------

def test_location_env_and_default(tmp_path, monkeypatch):
    monkeypatch.setenv("COSTMODEL_DB", str(tmp_path / "env" / "from-env.db"))
    Store().save_scenario("a", GPT2)
    assert (tmp_path / "env" / "from-env.db").is_file()
    monkeypatch.delenv("COSTMODEL_DB")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    Store()
    assert (tmp_path / "home" / ".costmodel" / "costmodel.db").is_file()
    with pytest.raises(InputError) as e:
        Store(tmp_path)  # a folder
    assert _field(e) == "db"


def test_wal_mode_and_version(store):
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION == 2
    conn.close()


def test_not_a_database(tmp_path):
    p = tmp_path / "junk.db"
    p.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InputError) as e:
        Store(p)
    assert _field(e) == "db"


def test_newer_schema_is_refused(tmp_path):
    p = tmp_path / "future.db"
    conn = sqlite3.connect(p)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (99)")
    conn.commit()
    conn.close()
    with pytest.raises(InputError) as e:
        Store(p)
    assert _field(e) == "db" and "newer" in str(e.value)


# The version-1 schema as it shipped, written by hand (not by the migration code under test).
V1_SQL = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (1);
CREATE TABLE scenarios (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, data TEXT NOT NULL,
                        created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE measurements (id INTEGER PRIMARY KEY AUTOINCREMENT, device TEXT, model TEXT, data TEXT NOT NULL,
                           created_at TEXT NOT NULL);
CREATE TABLE calibrations (id INTEGER PRIMARY KEY AUTOINCREMENT, device TEXT NOT NULL, data TEXT NOT NULL,
                           created_at TEXT NOT NULL);
"""


def test_migrates_v1_file(tmp_path):
    p = tmp_path / "old.db"
    conn = sqlite3.connect(p)  # rollback-journal mode, as an old file would be
    conn.executescript(V1_SQL)
    old = validate_scenario({"name": "old one", "model": "llama-2-7b", "hardware": "a100-sxm-80gb",
                             "workload": {"task": "infer", "prompt": 2048, "generate": 256, "precision": "bf16"}})
    conn.execute("INSERT INTO scenarios (name, data, created_at, updated_at) VALUES (?, ?, ?, ?)",
                 ("old one", json.dumps(old), "2025-01-01T00:00:00+00:00", "2025-01-02T00:00:00+00:00"))
    conn.execute("INSERT INTO measurements (device, model, data, created_at) VALUES ('h100', 'gpt2', '{\"x\": 1}', 't0')")
    conn.commit()
    conn.close()

    store = Store(p)
    assert store.schema_version() == 2
    (row,) = store.list_scenarios()
    # the v2 summary columns were filled from the stored record
    assert (row["name"], row["model"], row["hardware"], row["task"]) == ("old one", "llama-2-7b", "a100-sxm-80gb", "infer")
    assert row["created_at"] == "2025-01-01T00:00:00+00:00"
    assert store.load_scenario("old one") == old
    assert store.list_measurements(device="h100")[0]["x"] == 1
    conn = sqlite3.connect(p)
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"measurements_device_model", "calibrations_device"} <= indexes
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    Store(p)  # opening again is a no-op
    assert Store(p).schema_version() == 2


def test_empty_file_is_reported_not_initialised(tmp_path):
    p = tmp_path / "empty.db"
    p.touch()  # SQLite would read it as an empty database; costmodel never leaves one, so it is reported
    with pytest.raises(InputError) as e:
        Store(p)
    assert _field(e) == "db" and "0 bytes" in str(e.value)
    assert p.stat().st_size == 0 and sorted(x.name for x in tmp_path.iterdir()) == ["empty.db"]


# ---- concurrency: 8 processes x 100 scenarios -----------------------------------------------------

N_PROCS, N_EACH = 8, 100


def _scenario_for(worker: int, i: int) -> dict:
    return {"name": f"w{worker}-{i}", "model": "gpt2" if i % 2 else "bert-base",
            "workload": {"batch": 1 + (i % 7), "seq": 128 * (1 + worker % 4)}, "notes": f"worker {worker} item {i}"}


def _concurrent_worker(path: str, worker: int, start_at: float) -> list[str]:
    """Save and read back N_EACH scenarios; return every problem as text (never raise)."""
    problems = []
    while time.time() < start_at:  # start together, to collide
        time.sleep(0.001)
    try:
        store = Store(path)
        for i in range(N_EACH):
            sc = _scenario_for(worker, i)
            sid = store.save_scenario(sc["name"], sc)
            got = store.load_scenario(sid)
            if got != validate_scenario(sc):
                problems.append(f"w{worker} item {i}: read back differs")
            if i % 10 == 0:
                store.list_scenarios()
                store.save_measurement({"device": f"dev{worker}", "model": "gpt2", "i": i})
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        problems.append(f"w{worker}: {type(exc).__name__}: {exc}")
    return problems


def test_eight_processes_save_and_read(tmp_path):
    path = str(tmp_path / "shared.db")
    ctx = mp.get_context("spawn")
    start_at = time.time() + 4.0  # time for the 8 interpreters to import costmodel
    with ctx.Pool(N_PROCS) as pool:
        results = pool.starmap(_concurrent_worker, [(path, w, start_at) for w in range(N_PROCS)])
    problems = [p for r in results for p in r]
    assert problems == [], problems[:5]
    store = Store(path)
    names = {r["name"] for r in store.list_scenarios()}
    assert names == {f"w{w}-{i}" for w in range(N_PROCS) for i in range(N_EACH)}  # nothing lost
    for w in range(N_PROCS):
        for i in (0, 57, N_EACH - 1):
            assert store.load_scenario(f"w{w}-{i}") == validate_scenario(_scenario_for(w, i))
        assert len(store.list_measurements(device=f"dev{w}")) == N_EACH // 10


# ---- crash: SIGKILL in the middle of a write loop -------------------------------------------------

def _crash_item(i: int) -> dict:
    # a large note makes each transaction long, so the kill is likely to land inside one
    return {"name": f"crash-{i}", "model": "gpt2", "workload": {"batch": 1 + i % 5}, "notes": f"{i}:" + "x" * 15000}


def _crash_writer(path: str, first: int, conn) -> None:
    store = Store(path)
    i = first
    while True:
        store.save_scenario(f"crash-{i}", _crash_item(i))
        conn.send(i)  # only after the commit returned
        i += 1


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_sigkill_mid_write_keeps_committed(tmp_path):
    path = str(tmp_path / "crash.db")
    Store(path)
    ctx = mp.get_context("spawn")
    committed: set[int] = set()
    first = 0
    for round_ in range(3):
        reader, writer = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_crash_writer, args=(path, first, writer), daemon=True)
        proc.start()
        writer.close()
        deadline = time.monotonic() + 60
        got_this_round = 0
        while got_this_round < 20 + 7 * round_ and time.monotonic() < deadline:
            if reader.poll(0.5):
                committed.add(reader.recv())
                got_this_round += 1
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        assert proc.exitcode == -signal.SIGKILL
        while True:  # drain what it reported before dying
            try:
                committed.add(reader.recv())
            except (EOFError, OSError):
                break
        assert got_this_round >= 20, "writer made too little progress"
        first = max(committed) + 2  # skip the one that may have been in flight

        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
        store = Store(path)
        present = {r["name"] for r in store.list_scenarios()}
        missing = {f"crash-{i}" for i in committed} - present
        assert not missing, sorted(missing)[:5]
        for name in present:  # anything there (including a last, unreported commit) is whole
            i = int(name.split("-")[1])
            assert store.load_scenario(name) == validate_scenario(_crash_item(i))


# ---- export -> import round trip ------------------------------------------------------------------

def test_export_import_round_trip(store):
    from costmodel.ui.report import export_json, import_scenario

    sc = {"name": "QLoRA <7B> & friends", "model": "llama-2-7b", "hardware": "a10g-24gb",
          "workload": {"task": "train", "batch": 2, "seq": 1024, "precision": "int4", "lora_rank": 16,
                       "lora_targets": ["q_proj", "k_proj", "v_proj", "o_proj"], "grad_checkpointing": True},
          "plan": {"num_gpus": 4, "tokens": 1.5e9, "prices": {"usd_per_gpu_hour": 1.2}},
          "assumptions": {"efficiency": {"matmul": 0.5}}, "notes": "line 1\nline 2 — ünïcode"}
    store.save_scenario(sc["name"], sc)
    saved = store.load_scenario(sc["name"])
    text = export_json(saved)
    back = import_scenario(text)
    assert back == saved
    other = Store(store.path.parent / "other.db")
    other.save_scenario(back["name"], back)
    assert other.load_scenario(sc["name"]) == saved
    # a hardware record (not an id) and a config dict (not a preset) survive too
    from costmodel.catalog import load_hardware
    from costmodel.models import get_preset

    custom = {"name": "custom", "model": get_preset("gpt2").config, "hardware": load_hardware("t4-16gb").to_dict(),
              "workload": {"batch": 3}}
    store.save_scenario("custom", custom)
    assert import_scenario(export_json(store.load_scenario("custom"))) == store.load_scenario("custom")


# ---- the CLI on the same database -----------------------------------------------------------------

_cli = cli  # costmodel.cli.main in this process: (status, stdout, stderr)


def test_cli_scenarios(tmp_path):
    import costmodel
    from costmodel.models import get_preset

    db = str(tmp_path / "cli.db")
    cfg = tmp_path / "my-gpt2" / "config.json"
    cfg.parent.mkdir()
    cfg.write_text(json.dumps(get_preset("gpt2").config))
    rc, out, err = _cli(["scenarios", "save", "--db", db, "--name", "from file", "--model", str(cfg), "--batch", "4",
                         "--seq", "512", "--plan", '{"num_gpus": 2}', "--notes", "n"])
    assert rc == 0, err
    saved = Store(db).load_scenario("from file")
    assert saved["model"] == get_preset("gpt2").config  # the file's content, not its path
    assert saved["plan"] == {"num_gpus": 2} and saved["workload"]["batch"] == 4
    rc, out, _ = _cli(["scenarios", "list", "--db", db, "--json"])
    assert [r["name"] for r in json.loads(out)] == ["from file"]
    rc, out, _ = _cli(["scenarios", "show", "--db", db, "--json", "from file"])
    ref = costmodel.estimate(get_preset("gpt2").config, batch=4, seq=512)  # reference: the API
    assert json.loads(out)["results"]["memory_bytes"] == json.loads(json.dumps(ref.to_dict()))["memory_bytes"]
    export = tmp_path / "s.json"
    assert _cli(["scenarios", "export", "--db", db, "from file", "--format", "json", "-o", str(export)])[0] == 0
    assert _cli(["scenarios", "import", "--db", db, str(export), "--name", "imported"])[0] == 0
    assert {**Store(db).load_scenario("imported"), "name": "from file"} == saved
    assert _cli(["scenarios", "duplicate", "--db", db, "imported", "copy"])[0] == 0
    assert _cli(["scenarios", "rename", "--db", db, "copy", "copy 2"])[0] == 0
    assert _cli(["scenarios", "delete", "--db", db, "imported"])[0] == 0
    assert [r["name"] for r in Store(db).list_scenarios()] == ["copy 2", "from file"]
    rc, out, _ = _cli(["scenarios", "export", "--db", db, "from file", "copy 2", "--format", "csv"])
    assert rc == 0 and out.count("\n") == 3
    for argv, field in ((["show", "nope"], "scenario"), (["save", "--name", "", "--model", "gpt2"], "name"),
                        (["save", "--name", "x", "--model", "gpt2", "--plan", '{"a": NaN}'], "plan.a"),
                        (["save", "--name", "x", "--model", "/no/such.json"], "model"),
                        (["export", "copy 2", "--format", "pdf"], "format"),
                        (["import", str(tmp_path / "missing.json")], "file")):
        rc, out, err = _cli(["scenarios", argv[0], "--db", db, *argv[1:]])
        assert rc == 2 and err.startswith(f"error: {field}: "), (argv, err)
