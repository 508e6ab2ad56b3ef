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

About 660 lines: one class owns every SQL statement and the file's safety rules (locking, versions, foreign
files, read-only folders), so each guarantee above is enforced in one place.
"""

from __future__ import annotations

import json
import os
import random
import re
import sqlite3
import stat
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable
from urllib.parse import quote

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
# PRAGMA application_id of costmodel databases ("CMdb"): a file with another id is someone else's
APPLICATION_ID = 0x434D6462
LINK_PREFIX = "collectives/"
OUR_TABLES = frozenset({"schema_version", "scenarios", "measurements", "calibrations", "sqlite_sequence"})


# ---- helpers --------------------------------------------------------------------------------------

def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _read_only(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "readonly" in text or "read-only" in text or "unable to open" in text


def _cannot_open(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "unable to open" in text or "readonly" in text


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(p) -> str:
    text = os.fspath(p)
    return text if len(text) <= 200 else text[:120] + "..." + text[-40:]


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
    processes: every operation opens its own short-lived connection.

    Reads use read-only connections (``file:...?mode=ro``), so listing and showing work on a file or folder
    that cannot be written; a write there is an ``InputError`` saying the database is read-only. A file is
    opened only if it is costmodel's (``PRAGMA application_id`` = ``APPLICATION_ID``, or a database made before
    that id, recognised by its ``schema_version`` table and costmodel's tables only); another SQLite file, an
    empty (0-byte) file or a file that is not a database is refused without being changed. A new database is
    built in a temporary file and linked into place, so no other process ever sees a half-made one."""

    def __init__(self, path: str | os.PathLike | None = None, lock_timeout_s: float = LOCK_TIMEOUT_S):
        p = Path(os.fspath(path)).expanduser() if path is not None else default_path()
        if str(p) == ":memory:" or str(p) == "":
            raise InputError("db", "give a file path (an in-memory database would vanish between operations)")
        if not _encodable(os.fspath(p)):
            raise InputError("db", f"the path {os.fspath(p).encode('utf-8', 'replace').decode()[:200]!r} is not valid "
                                   "Unicode text (a non-UTF-8 byte); give another path")
        self.path = p
        self.lock_timeout_s = float(lock_timeout_s)
        self.read_only = False  # True when the file or its folder cannot be written (reads still work)
        self._ro_params = "mode=ro"
        try:
            st = p.stat()
        except FileNotFoundError:
            st = None
        except OSError as exc:  # a name too long, a folder in the path that is a file, no permission
            raise InputError("db", f"cannot open {_shown(p)}: {exc.strerror or exc}") from None
        except ValueError as exc:  # a NUL byte in the path
            raise InputError("db", f"cannot open {_shown(p)}: {exc}") from None
        if st is None:
            self._create()
        elif stat.S_ISDIR(st.st_mode):
            raise InputError("db", f"{_shown(p)} is a folder; give a file path such as {_shown(p / 'costmodel.db')}")
        elif not stat.S_ISREG(st.st_mode):
            raise InputError("db", f"{_shown(p)} is not a regular file (a FIFO, socket or device); give a database "
                                   "file path")
        elif st.st_size == 0:
            raise InputError("db", f"{_shown(p)} is an empty file (0 bytes), not a costmodel database (costmodel never "
                                   "leaves one: a failed copy?); delete it to start a new database there, or give "
                                   "another path")
        self._check_and_migrate()

    # ---- creation, identity and migrations -----------------------------------------------------

    def _create(self) -> None:
        """Build a new, fully migrated database in a temporary file of the same folder and link it into place
        (``os.link`` fails if another process got there first: then theirs is used)."""
        p = self.path
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError("db", f"cannot create folder {_shown(p.parent)}: {exc.strerror or exc}") from None
        tmp = p.with_name(f".{p.name}.{os.getpid()}.{random.getrandbits(32):08x}.new")
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("BEGIN IMMEDIATE")
                self._migrate(conn, 0)
                conn.execute("COMMIT")
            finally:
                conn.close()
            try:
                os.link(tmp, p)
            except FileExistsError:
                pass  # created meanwhile by another process: use that one
            except OSError:  # a file system without hard links: rename (replaces only a just-made twin)
                if not p.exists():
                    os.replace(tmp, p)
        except sqlite3.Error as exc:
            raise InputError("db", f"cannot create {_shown(p)}: {exc}") from None
        except OSError as exc:
            raise InputError("db", f"cannot create {_shown(p)}: {exc.strerror or exc} (the folder must be "
                                   "writable to start a new database)") from None
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                try:
                    os.unlink(f"{tmp}{suffix}")
                except OSError:
                    pass

    @staticmethod
    def _identity(conn: sqlite3.Connection) -> tuple[int, int | None, set]:
        """(application_id, schema version or None, table names) of an open database."""
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        version = None
        if "schema_version" in tables:
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            version = row[0] if row else 0
        return app_id, version, tables

    def _check_identity(self, app_id: int, version, tables: set) -> int:
        """The schema version of a costmodel database; ``InputError`` for anything else (nothing is changed)."""
        ours = app_id == APPLICATION_ID or (app_id == 0 and version is not None and tables <= OUR_TABLES)
        if not ours:
            if app_id not in (0, APPLICATION_ID):
                what = f"application_id {app_id:#x}, not costmodel's {APPLICATION_ID:#x}"
            elif not tables:
                what = "no tables: an SQLite file costmodel did not make"
            else:
                shown = ", ".join(sorted(tables)[:8]) + (" ..." if len(tables) > 8 else "")
                what = f"tables {shown}"
            raise InputError("db", f"{_shown(self.path)} is an SQLite database but not costmodel's ({what}); costmodel "
                                   "does not open or change other databases: give another --db path or "
                                   f"${ENV_DB}")
        version = version or 0
        if version > SCHEMA_VERSION:
            raise InputError("db", f"{_shown(self.path)} has schema version {version}, newer than this costmodel "
                                   f"understands ({SCHEMA_VERSION}); upgrade costmodel")
        return version

    def _check_and_migrate(self) -> None:
        """Read-only first: is this costmodel's database, and is it current? If not current (an older schema, or
        made before the application id), upgrade it on a writable connection, in one transaction."""
        app_id, version, tables = self._retry(self._identity, readonly=True)
        version = self._check_identity(app_id, version, tables)
        if version == SCHEMA_VERSION and app_id == APPLICATION_ID:
            self._probe_writable()
            return

        def upgrade(wconn):
            mode = wconn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise InputError("db", f"{_shown(self.path)}: cannot switch to WAL mode (got {mode}); is it on a "
                                       "network file system?")
            wconn.execute("BEGIN IMMEDIATE")
            a, v, t = self._identity(wconn)  # again, under the write lock: another process may have upgraded it
            self._migrate(wconn, self._check_identity(a, v, t))
            wconn.execute("COMMIT")

        try:
            self._retry(upgrade)
        except InputError as err:
            if not self.read_only:
                raise
            if version < SCHEMA_VERSION:
                raise InputError("db", f"{_shown(self.path)} is read-only and has schema version {version}; this "
                                       f"costmodel reads version {SCHEMA_VERSION} and must upgrade the file first: "
                                       "copy it to a writable folder") from None
            # current schema, made before the application id: readable as it is

    def _probe_writable(self) -> None:
        """Note (without writing) whether the file and its folder can be written: ``read_only``."""
        folder_ok = os.access(self.path.parent, os.W_OK)
        self.read_only = not (os.access(self.path, os.W_OK) and folder_ok)

    @staticmethod
    def _migrate(conn: sqlite3.Connection, version: int) -> None:
        """Upgrade from ``version`` to ``SCHEMA_VERSION`` inside the caller's write transaction, and stamp the
        file as costmodel's (application_id; user_version mirrors the schema version)."""
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        if conn.execute("SELECT version FROM schema_version").fetchone() is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (0)")
        for i in range(version, SCHEMA_VERSION):
            MIGRATIONS[i](conn)
            conn.execute("UPDATE schema_version SET version = ?", (i + 1,))
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # ---- connection and retry ------------------------------------------------------------------

    def _connect(self, readonly: bool = False) -> sqlite3.Connection:
        # reads: read-only (works where nothing may be written, and can never change the file); writes: an
        # existing file only (mode=rw never creates a new, empty database by accident)
        uri = f"file:{quote(os.fspath(self.path))}?{self._ro_params if readonly else 'mode=rw'}"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.OperationalError as exc:
            if _locked(exc):
                raise
            raise InputError("db", f"cannot open {_shown(self.path)}: {exc}") from None
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not readonly:
            # NORMAL is durable against a killed process (WAL commits survive it); only an OS crash or
            # power loss can roll back the last commits, and never corrupts the file.
            conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def _retry(self, fn, readonly: bool = False):
        """Run ``fn(conn)`` on a fresh connection; retry while another process holds the lock."""
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.002
        while True:
            conn = None
            try:
                conn = self._connect(readonly)
                return fn(conn)
            except sqlite3.OperationalError as exc:
                if conn is not None and conn.in_transaction:
                    try:
                        conn.rollback()
                    except sqlite3.Error:
                        pass
                if readonly and self._ro_params == "mode=ro" and _cannot_open(exc):
                    # a WAL database in a folder nobody can write: no -shm file can be made, and no writer can
                    # exist either, so the file is read as immutable
                    self._ro_params = "mode=ro&immutable=1"
                    self.read_only = True
                    continue
                if not readonly and _read_only(exc):
                    self.read_only = True
                    raise InputError("db", f"{_shown(self.path)} is read-only (the file or its folder cannot be "
                                           "written): nothing was saved; listing and showing still work") from None
                if not _locked(exc):
                    raise InputError("db", f"{_shown(self.path)}: {exc}") from None
                if time.monotonic() >= deadline:
                    raise InputError("db", f"{_shown(self.path)} stayed busy (locked by another process) for "
                                           f"{self.lock_timeout_s:g} s; try again") from None
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.25)
            except sqlite3.DatabaseError as exc:  # not a database, corrupt, disk full ...
                raise InputError("db", f"{_shown(self.path)}: {exc}") from None
            except UnicodeEncodeError:  # a name or filter with a lone surrogate (a non-UTF-8 byte in argv)
                raise InputError("db", "a name or filter is not valid Unicode text (a lone surrogate such as "
                                       "a non-UTF-8 byte); give it as UTF-8") from None
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
        """``fn(conn)`` inside one read transaction (a consistent snapshot) on a read-only connection, with retry."""

        def run(conn):
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                conn.execute("COMMIT")

        return self._retry(run, readonly=True)

    def schema_version(self) -> int:
        return self._read(lambda c: c.execute("SELECT version FROM schema_version").fetchone()[0])

    # ---- scenarios -----------------------------------------------------------------------------

    @staticmethod
    def _scenario_row(conn, name_or_id, field: str = "scenario"):
        if isinstance(name_or_id, bool) or not isinstance(name_or_id, (str, int)):
            raise InputError(field, f"give a scenario name or id, got {name_or_id!r}")
        if isinstance(name_or_id, str) and not _encodable(name_or_id):
            raise InputError(field, f"no scenario named {name_or_id.encode('utf-8', 'replace').decode()[:120]!r} "
                                    "(not valid Unicode text)")
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

    def save_scenarios(self, scenarios: list[dict], overwrite: bool = False) -> list[int]:
        """Save several scenarios (each named by its ``name``) all or nothing: every one is validated first, then
        all are written in ONE transaction; a name that exists (without ``overwrite``) or appears twice fails the
        whole batch and nothing is saved. Returns their ids in order."""
        if not isinstance(scenarios, (list, tuple)) or not scenarios:
            raise InputError("scenarios", "give a non-empty list of scenarios")
        prepared, seen = [], set()
        for i, scenario in enumerate(scenarios):
            if not isinstance(scenario, dict):
                raise InputError("scenario", f"entry {i} must be a dict, got {type(scenario).__name__}")
            name = check_name(scenario.get("name"))
            if name in seen:
                raise InputError("name", f"{name!r} appears twice in this import; names must be unique")
            seen.add(name)
            data = validate_scenario({**scenario, "name": name})
            prepared.append((name, _dumps(data, "scenario"), _summary(data)))

        def op(conn):
            now, ids = _now(), []
            taken = [n for n, _, _ in prepared
                     if conn.execute("SELECT 1 FROM scenarios WHERE name = ?", (n,)).fetchone()]
            if taken and not overwrite:
                shown = ", ".join(repr(n) for n in taken[:5]) + (" ..." if len(taken) > 5 else "")
                raise InputError("name", f"{len(taken)} of the {len(prepared)} scenarios already exist ({shown}); "
                                         "nothing was imported: rename them, or overwrite")
            for name, text, s in prepared:
                row = conn.execute("SELECT id FROM scenarios WHERE name = ?", (name,)).fetchone()
                if row is not None:
                    conn.execute("UPDATE scenarios SET data = ?, updated_at = ?, model = ?, hardware = ?, task = ? "
                                 "WHERE id = ?", (text, now, s["model"], s["hardware"], s["task"], row[0]))
                    ids.append(row[0])
                else:
                    ids.append(conn.execute(
                        "INSERT INTO scenarios (name, data, created_at, updated_at, model, hardware, task) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)", (name, text, now, now, s["model"], s["hardware"], s["task"])
                    ).lastrowid)
            return ids

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

    # link calibrations (``probe --collectives``) live beside the efficiency calibrations, under the device name
    # ``collectives/<hardware id>``, so they never mix with a device's efficiency fits
    def save_link_calibration(self, hardware_id: str, record: dict) -> int:
        return self.save_calibration(LINK_PREFIX + hardware_id, record)

    def link_calibration(self, hardware_id: str, which: str | int = "latest") -> dict:
        """The stored link calibration of ``hardware_id``: the latest, or the one with id ``which``."""
        found = self.list_calibrations(LINK_PREFIX + hardware_id)
        if not found:
            raise InputError("link_calibration", f"no stored link calibration for {hardware_id[:80]}; measure one with "
                             f"`python -m costmodel probe --collectives --hardware {hardware_id[:80]} --save`")
        if which == "latest":
            return found[0]
        for rec in found:
            if rec["id"] == which:
                return rec
        raise InputError("link_calibration", f"no link calibration {which} for {hardware_id[:80]}; stored: "
                         f"{', '.join(str(r['id']) for r in found[:20])}")
