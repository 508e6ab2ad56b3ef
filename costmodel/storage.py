"""SQLite store for scenarios, profiler measurements and calibrations (stdlib ``sqlite3`` only).

Where the file is: the ``path`` given to ``Store``, else the ``COSTMODEL_DB`` environment variable, else
``~/.costmodel/costmodel.db`` (the folder is created).

Guarantees (docs/scenarios.md, "Concurrency"):

- WAL journal: readers never block the writer and the writer never blocks readers.
- Every write is one ``BEGIN IMMEDIATE`` transaction on a fresh connection: it commits completely or not
  at all, so a process killed mid-write leaves every earlier commit intact and the file readable.
- ``busy_timeout`` makes a connection wait for a lock; on top of it every operation retries with
  jittered back-off until ``lock_timeout_s``, so "database is locked" never reaches the user. If the
  lock is still held after that, the error is ``InputError("db", ...)``, saying so in words.
- The schema carries a version (table ``schema_version``) and is upgraded in place on open by the
  functions in ``MIGRATIONS``, applied in order, each in the same transaction as its version bump.

Records are JSON text (``json.dumps(allow_nan=False)``): what is saved is what is loaded, exactly.
"""

from __future__ import annotations

import json
import os
import random
import re
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from .errors import InputError
from .scenario import check_name, find_bad_value, hardware_label, model_label, validate_scenario

ENV_DB = "COSTMODEL_DB"
DEFAULT_DB = Path("~/.costmodel/costmodel.db")
BUSY_TIMEOUT_MS = 5_000
LOCK_TIMEOUT_S = 120.0


# ---- migrations ---------------------------------------------------------------------------------
# MIGRATIONS[i] upgrades a database from schema version i to i + 1. Version 0 is an empty file
# (or one made before versioning). Never edit a migration that has shipped: append a new one.

def _m1_initial(conn: sqlite3.Connection) -> None:
    """Version 1: scenarios, measurements and calibrations as JSON text."""
    conn.execute("""CREATE TABLE IF NOT EXISTS scenarios (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        data TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL)""")
    conn.execute("""CREATE TABLE IF NOT EXISTS measurements (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        device TEXT,
        model TEXT,
        data TEXT NOT NULL,
        created_at TEXT NOT NULL)""")
    conn.execute("""CREATE TABLE IF NOT EXISTS calibrations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        device TEXT NOT NULL,
        data TEXT NOT NULL,
        created_at TEXT NOT NULL)""")


def _m2_summaries_and_indexes(conn: sqlite3.Connection) -> None:
    """Version 2: summary columns on scenarios (listed without parsing every record) and indexes for
    the measurement filters and the latest-calibration lookup. Fills the summaries of existing rows."""
    for col in ("model", "hardware", "task"):
        conn.execute(f"ALTER TABLE scenarios ADD COLUMN {col} TEXT NOT NULL DEFAULT ''")
    rows = conn.execute("SELECT id, data FROM scenarios").fetchall()
    for row_id, data in rows:
        s = _summary(json.loads(data))
        conn.execute("UPDATE scenarios SET model = ?, hardware = ?, task = ? WHERE id = ?",
                     (s["model"], s["hardware"], s["task"], row_id))
    conn.execute("CREATE INDEX IF NOT EXISTS measurements_device_model ON measurements (device, model)")
    conn.execute("CREATE INDEX IF NOT EXISTS measurements_model ON measurements (model)")
    conn.execute("CREATE INDEX IF NOT EXISTS calibrations_device ON calibrations (device, id)")


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_m1_initial, _m2_summaries_and_indexes)
SCHEMA_VERSION = len(MIGRATIONS)


# ---- helpers --------------------------------------------------------------------------------------

def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _summary(scenario: dict) -> dict:
    w = scenario.get("workload") or {}
    return {"model": model_label(scenario.get("model")), "hardware": hardware_label(scenario.get("hardware")),
            "task": str(w.get("task", ""))}


def _dumps(obj, field: str) -> str:
    if not isinstance(obj, dict):
        raise InputError(field, f"must be a dict (JSON object), got {type(obj).__name__}")
    bad = find_bad_value(obj, field)
    if bad:
        raise InputError(bad, "must be a finite number, string, bool, null, list or object (JSON data)")
    # ensure_ascii: the text is plain ASCII, so odd characters (lone surrogates) cannot fail the insert
    return json.dumps(obj, allow_nan=False, sort_keys=False, separators=(",", ":"))


def _label(value: str) -> str | None:
    """device / model label of a measurement or calibration: a string, or a dict's id/name."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("id", "name", "model", "device"):
            if isinstance(value.get(key), str):
                return value[key]
    return str(value)


def default_path() -> Path:
    env = os.environ.get(ENV_DB, "").strip()
    return Path(env).expanduser() if env else DEFAULT_DB.expanduser()


class Store:
    """Scenarios, measurements and calibrations in one SQLite file. Safe to share between threads and
    processes: every operation opens its own short-lived connection."""

    def __init__(self, path: str | os.PathLike | None = None, lock_timeout_s: float = LOCK_TIMEOUT_S):
        p = Path(os.fspath(path)).expanduser() if path is not None else default_path()
        if str(p) == ":memory:" or str(p) == "":
            raise InputError("db", "give a file path (an in-memory database would vanish between operations)")
        if p.is_dir():
            raise InputError("db", f"{p} is a folder; give a file path such as {p / 'costmodel.db'}")
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError("db", f"cannot create folder {p.parent}: {exc.strerror or exc}") from None
        self.path = p
        self.lock_timeout_s = float(lock_timeout_s)
        self._retry(self._init_db)

    # ---- connection and retry ------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.OperationalError as exc:
            if _locked(exc):
                raise
            raise InputError("db", f"cannot open {self.path}: {exc}") from None
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # NORMAL is durable against a killed process (WAL commits survive it); only an OS crash or
        # power loss can roll back the last commits, and never corrupts the file.
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def _retry(self, fn):
        """Run ``fn(conn)`` on a fresh connection; retry while another process holds the lock."""
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.002
        while True:
            conn = None
            try:
                conn = self._connect()
                return fn(conn)
            except sqlite3.OperationalError as exc:
                if conn is not None and conn.in_transaction:
                    try:
                        conn.rollback()
                    except sqlite3.Error:
                        pass
                if not _locked(exc):
                    raise InputError("db", f"{self.path}: {exc}") from None
                if time.monotonic() >= deadline:
                    raise InputError("db", f"{self.path} stayed busy (locked by another process) for "
                                           f"{self.lock_timeout_s:g} s; try again") from None
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.25)
            except sqlite3.DatabaseError as exc:  # not a database, corrupt, disk full ...
                raise InputError("db", f"{self.path}: {exc}") from None
            except BaseException:
                if conn is not None and conn.in_transaction:
                    conn.rollback()
                raise
            finally:
                if conn is not None:
                    conn.close()

    def _write(self, fn):
        """``fn(conn)`` inside one BEGIN IMMEDIATE transaction (all or nothing), with retry."""

        def run(conn):
            conn.execute("BEGIN IMMEDIATE")
            out = fn(conn)
            conn.execute("COMMIT")
            return out

        return self._retry(run)

    def _read(self, fn):
        """``fn(conn)`` inside one read transaction (a consistent snapshot), with retry."""

        def run(conn):
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                conn.execute("COMMIT")

        return self._retry(run)

    def _init_db(self, conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise InputError("db", f"{self.path}: cannot switch to WAL mode (got {mode}); "
                                   "is it on a network file system?")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        version = row[0] if row else 0
        if row is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (0)")
        if version > SCHEMA_VERSION:
            conn.execute("ROLLBACK")
            raise InputError("db", f"{self.path} has schema version {version}, newer than this costmodel "
                                   f"understands ({SCHEMA_VERSION}); upgrade costmodel")
        for i in range(version, SCHEMA_VERSION):
            MIGRATIONS[i](conn)
            conn.execute("UPDATE schema_version SET version = ?", (i + 1,))
        conn.execute("COMMIT")

    def schema_version(self) -> int:
        return self._read(lambda c: c.execute("SELECT version FROM schema_version").fetchone()[0])

    # ---- scenarios -----------------------------------------------------------------------------

    @staticmethod
    def _scenario_row(conn, name_or_id, field: str = "scenario"):
        if isinstance(name_or_id, bool) or not isinstance(name_or_id, (str, int)):
            raise InputError(field, f"give a scenario name or id, got {name_or_id!r}")
        row = None
        if isinstance(name_or_id, str):
            row = conn.execute("SELECT id, name, data FROM scenarios WHERE name = ?",
                               (name_or_id.strip(),)).fetchone()
            if row is None and re.fullmatch(r"[0-9]{1,18}", name_or_id.strip()):  # ASCII digits, in SQLite's range
                name_or_id = int(name_or_id.strip())
        if row is None and isinstance(name_or_id, int) and 0 <= name_or_id < 2**63:
            row = conn.execute("SELECT id, name, data FROM scenarios WHERE id = ?", (name_or_id,)).fetchone()
        if row is None:
            known = [r[0] for r in conn.execute("SELECT name FROM scenarios ORDER BY name LIMIT 20")]
            hint = f"; saved: {', '.join(known)}" if known else "; none saved yet"
            raise InputError(field, f"no scenario named {str(name_or_id)[:120]!r}{hint}")
        return row

    def save_scenario(self, name: str, scenario: dict, overwrite: bool = False) -> int:
        """Validate ``scenario`` (``costmodel.scenario.validate_scenario``) and save it under ``name``.
        Returns its id. An existing name is an error unless ``overwrite`` (then the id is kept)."""
        name = check_name(name)
        if not isinstance(scenario, dict):
            raise InputError("scenario", f"must be a dict, got {type(scenario).__name__}")
        data = validate_scenario({**scenario, "name": name})
        text = _dumps(data, "scenario")
        s = _summary(data)

        def op(conn):
            now = _now()
            row = conn.execute("SELECT id FROM scenarios WHERE name = ?", (name,)).fetchone()
            if row is not None:
                if not overwrite:
                    raise InputError("name", f"a scenario named {name!r} already exists; choose another name "
                                             "or overwrite it")
                conn.execute("UPDATE scenarios SET data = ?, updated_at = ?, model = ?, hardware = ?, task = ? "
                             "WHERE id = ?", (text, now, s["model"], s["hardware"], s["task"], row[0]))
                return row[0]
            cur = conn.execute("INSERT INTO scenarios (name, data, created_at, updated_at, model, hardware, task) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?)",
                               (name, text, now, now, s["model"], s["hardware"], s["task"]))
            return cur.lastrowid

        return self._write(op)

    def load_scenario(self, name_or_id) -> dict:
        """The scenario dict exactly as saved (by name, or by id)."""
        row = self._read(lambda c: self._scenario_row(c, name_or_id))
        return json.loads(row[2])

    def list_scenarios(self) -> list[dict]:
        """One summary per scenario, by name: id, name, created_at, updated_at, model, hardware, task."""
        rows = self._read(lambda c: c.execute(
            "SELECT id, name, created_at, updated_at, model, hardware, task FROM scenarios ORDER BY name").fetchall())
        keys = ("id", "name", "created_at", "updated_at", "model", "hardware", "task")
        return [dict(zip(keys, r)) for r in rows]

    def rename_scenario(self, old, new: str) -> None:
        new = check_name(new, "new_name")

        def op(conn):
            row_id, old_name, data = self._scenario_row(conn, old)
            if new == old_name:
                return
            if conn.execute("SELECT 1 FROM scenarios WHERE name = ?", (new,)).fetchone():
                raise InputError("new_name", f"a scenario named {new!r} already exists")
            d = json.loads(data)
            d["name"] = new
            conn.execute("UPDATE scenarios SET name = ?, data = ?, updated_at = ? WHERE id = ?",
                         (new, _dumps(d, "scenario"), _now(), row_id))

        self._write(op)

    def duplicate_scenario(self, name, new_name: str) -> int:
        new_name = check_name(new_name, "new_name")

        def op(conn):
            _, _, data = self._scenario_row(conn, name)
            if conn.execute("SELECT 1 FROM scenarios WHERE name = ?", (new_name,)).fetchone():
                raise InputError("new_name", f"a scenario named {new_name!r} already exists")
            d = json.loads(data)
            d["name"] = new_name
            s = _summary(d)
            now = _now()
            cur = conn.execute("INSERT INTO scenarios (name, data, created_at, updated_at, model, hardware, task) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?)",
                               (new_name, _dumps(d, "scenario"), now, now, s["model"], s["hardware"], s["task"]))
            return cur.lastrowid

        return self._write(op)

    def delete_scenario(self, name) -> None:
        def op(conn):
            row_id = self._scenario_row(conn, name)[0]
            conn.execute("DELETE FROM scenarios WHERE id = ?", (row_id,))

        self._write(op)

    # ---- measurements --------------------------------------------------------------------------

    def save_measurement(self, record: dict) -> int:
        """Save one profiler record (any JSON-able dict). Its ``device`` and ``model`` (strings, or dicts
        with an ``id``/``name``) are indexed for ``list_measurements``. Returns its id."""
        text = _dumps(record, "measurement")
        device, model = _label(record.get("device")), _label(record.get("model"))

        def op(conn):
            cur = conn.execute("INSERT INTO measurements (device, model, data, created_at) VALUES (?, ?, ?, ?)",
                               (device, model, text, _now()))
            return cur.lastrowid

        return self._write(op)

    @staticmethod
    def _with_meta(row) -> dict:
        rec = json.loads(row[1])
        rec["id"] = row[0]
        rec["created_at"] = row[2]
        return rec

    def list_measurements(self, device: str | None = None, model: str | None = None) -> list[dict]:
        """Measurements, oldest first, optionally only one device and/or model; each with id and created_at."""
        sql, args, where = "SELECT id, data, created_at FROM measurements", [], []
        if device is not None:
            where.append("device = ?")
            args.append(device)
        if model is not None:
            where.append("model = ?")
            args.append(model)
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._read(lambda c: c.execute(sql + " ORDER BY id", args).fetchall())
        return [self._with_meta(r) for r in rows]

    def measurement_labels(self) -> dict[str, dict[str, int]]:
        """{"devices": {device: runs}, "models": {model: runs}} of the stored measurements (for filters)."""
        def q(col):
            return self._read(lambda c: c.execute(
                f"SELECT {col}, COUNT(*) FROM measurements GROUP BY {col} ORDER BY {col}").fetchall())
        return {"devices": {d or "": n for d, n in q("device")}, "models": {m or "": n for m, n in q("model")}}

    def count_measurements(self, device: str | None = None) -> int:
        """How many measurements are stored (of one device), without reading them."""
        sql, args = "SELECT COUNT(*) FROM measurements", []
        if device is not None:
            sql, args = sql + " WHERE device = ?", [device]
        return int(self._read(lambda c: c.execute(sql, args).fetchone())[0])

    def get_measurement(self, id: int) -> dict:
        if isinstance(id, bool) or not isinstance(id, int):
            raise InputError("measurement", f"give a measurement id (a whole number), got {id!r}")
        row = self._read(lambda c: c.execute("SELECT id, data, created_at FROM measurements WHERE id = ?",
                                             (id,)).fetchone())
        if row is None:
            raise InputError("measurement", f"no measurement with id {id}")
        return self._with_meta(row)

    # ---- calibrations --------------------------------------------------------------------------

    def save_calibration(self, device: str, record: dict) -> int:
        if not isinstance(device, str) or not device.strip():
            raise InputError("device", f"must be a non-empty device id, got {device!r}")
        text = _dumps(record, "calibration")

        def op(conn):
            cur = conn.execute("INSERT INTO calibrations (device, data, created_at) VALUES (?, ?, ?)",
                               (device.strip(), text, _now()))
            return cur.lastrowid

        return self._write(op)

    def list_calibrations(self, device: str, limit: int | None = None) -> list[dict]:
        """The stored calibrations of ``device``, newest first (at most ``limit``; with id, device, created_at)."""
        if not isinstance(device, str):
            raise InputError("device", f"must be a device id, got {device!r}")
        sql = "SELECT id, data, created_at FROM calibrations WHERE device = ? ORDER BY id DESC"
        args: list = [device.strip()]
        if limit is not None:
            sql, args = sql + " LIMIT ?", args + [int(limit)]
        rows = self._read(lambda c: c.execute(sql, args).fetchall())
        out = []
        for row in rows:
            rec = self._with_meta(row)
            rec.setdefault("device", device.strip())
            out.append(rec)
        return out

    def latest_calibration(self, device: str) -> dict | None:
        """The most recently saved calibration of ``device`` (with id, device, created_at), or None."""
        found = self.list_calibrations(device, limit=1)
        return found[0] if found else None
