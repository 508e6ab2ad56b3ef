"""``python -m costmodel scenarios list|show|save|export|import|delete|rename|duplicate``.

All subcommands take ``--db PATH`` (default: ``$COSTMODEL_DB`` or ``~/.costmodel/costmodel.db``) and
``--json`` (one JSON object or list on stdout). Errors are ``InputError``: exit status 2, one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import InputError
from ..safe_json import MAX_BYTES, parse_config_text, read_config_file, read_file_bytes
from ..scenario import evaluate_scenario
from ..storage import Store
from ..ui import report
from .args import add_workload_args, workload_from_args
from .estimate import print_estimate
from .output import dumps, note, printable


def _common(p: argparse.ArgumentParser, json_flag: bool = True) -> None:
    p.add_argument("--db", default=None, help="SQLite file (default: $COSTMODEL_DB or ~/.costmodel/costmodel.db)")
    if json_flag:
        p.add_argument("--json", action="store_true", help="print JSON")


def register(sub) -> None:
    p = sub.add_parser("scenarios", help="saved scenarios: list, show, save, export, import, delete, rename, duplicate")
    ss = p.add_subparsers(dest="scenarios_command", required=True, parser_class=type(p))

    q = ss.add_parser("list", help="list saved scenarios")
    _common(q)
    q = ss.add_parser("show", help="one scenario and its estimate")
    q.add_argument("name", help="scenario name or id")
    _common(q)
    q = ss.add_parser("save", help="save a scenario from the estimate arguments")
    q.add_argument("--name", required=True, help="scenario name (1-120 characters)")
    add_workload_args(q)  # --model ... --json
    q.add_argument("--plan", default=None, help="plan inputs as a JSON object, e.g. '{\"num_gpus\": 8}'")
    q.add_argument("--assumptions", default=None, help="overrides as a JSON object, e.g. "
                                                       "'{\"efficiency\": {\"matmul\": 0.5}}'")
    q.add_argument("--notes", default="", help="free text")
    q.add_argument("--overwrite", action="store_true", help="replace a scenario of the same name")
    _common(q, json_flag=False)
    q = ss.add_parser("export", help="export scenarios as csv, json or html")
    q.add_argument("names", nargs="+", help="one name (a report) or several (a comparison)")
    q.add_argument("--format", default="json", help="csv | json | html")
    q.add_argument("--output", "-o", default=None, help="file to write (default: stdout)")
    _common(q, json_flag=False)
    q = ss.add_parser("import", help="import a scenario JSON file (from export --format json)")
    q.add_argument("file", help="path, or - for stdin")
    q.add_argument("--name", default=None, help="save under this name instead (one scenario only)")
    q.add_argument("--overwrite", action="store_true")
    _common(q)
    q = ss.add_parser("delete", help="delete a scenario")
    q.add_argument("name")
    _common(q)
    q = ss.add_parser("rename", help="rename a scenario")
    q.add_argument("name")
    q.add_argument("new_name")
    _common(q)
    q = ss.add_parser("duplicate", help="copy a scenario under a new name")
    q.add_argument("name")
    q.add_argument("new_name")
    _common(q)
    p.set_defaults(run=run)


def _json_arg(text, field: str) -> dict:
    if text is None:
        return {}
    return parse_config_text(text, max_bytes=100_000, field=field)


def _is_file(value: str) -> bool:
    """Whether a regular file is there; a name the OS refuses (too long, a NUL byte) is not one."""
    try:
        return Path(value).is_file()
    except (OSError, ValueError):
        return False


def _file_or_id(value, field: str):
    """A preset/catalog id stays a string; a path to a JSON file is read (as data) and embedded."""
    if value is None:
        return None
    if value.endswith(".json") or "/" in value or _is_file(value):
        if not _is_file(value):
            raise InputError(field, f"no such file: {value[:200]}")
        return read_config_file(value, field=field)
    return value


def _print(obj) -> None:
    print(dumps(obj))  # strict JSON, ASCII: control and bidi characters in names arrive escaped (\u001b)


def run(args) -> int:
    cmd = args.scenarios_command
    store = Store(args.db)
    if cmd == "list":
        rows = store.list_scenarios()
        if args.json:
            _print(rows)
        elif not rows:
            print(f"no scenarios saved in {printable(store.path)}")
        else:
            for r in rows:
                print(f"{r['id']:>5d}  {printable(r['name']):<32s} {printable(r['model']):<20s} "
                      f"{printable(r['hardware']):<18s} {r['task']:<6s} {r['updated_at'][:19]}")
    elif cmd == "show":
        s = store.load_scenario(args.name)
        est = evaluate_scenario(s)
        if args.json:
            _print({"scenario": s, "results": est.to_dict()})
        else:
            print(f"scenario {printable(s['name'])}" + (f": {printable(s['notes'])}" if s["notes"] else ""))
            if s["plan"]:
                print(f"plan       {json.dumps(s['plan'])}")
            if s["assumptions"]:
                print(f"overrides  {json.dumps(s['assumptions'])}")
            print_estimate(est)
    elif cmd == "save":
        scenario = {"name": args.name, "model": _file_or_id(args.model, "model"),
                    "hardware": _file_or_id(args.hardware, "hardware"),
                    "workload": workload_from_args(args).to_dict(), "plan": _json_arg(args.plan, "plan"),
                    "assumptions": _json_arg(args.assumptions, "assumptions"), "notes": args.notes}
        sid = store.save_scenario(args.name, scenario, overwrite=args.overwrite)
        if args.json:
            _print({"id": sid, "name": args.name.strip()})
        else:
            print(f"saved scenario {printable(repr(args.name.strip()))} (id {sid}) in {printable(store.path)}")
    elif cmd == "export":
        fmt = args.format.lower()
        scenarios = [store.load_scenario(n) for n in args.names]
        target = scenarios[0] if len(scenarios) == 1 else scenarios
        if fmt == "csv":
            text = report.export_csv(target)
        elif fmt == "json":
            text = report.export_json(target)
        elif fmt == "html":
            text = report.export_html(target)
        else:
            raise InputError("format", f"must be csv, json or html, got {args.format!r}")
        if args.output:
            try:
                Path(args.output).write_text(text, encoding="utf-8")
            except OSError as exc:
                raise InputError("output", f"cannot write {args.output}: {exc.strerror or exc}") from None
            note(f"wrote {args.output}")
        else:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
    elif cmd == "import":
        if args.file == "-":
            raw = sys.stdin.buffer.read(MAX_BYTES + 1) if hasattr(sys.stdin, "buffer") else sys.stdin.read()
        else:  # a regular file only: a FIFO or device is refused, never waited on
            raw = read_file_bytes(args.file, MAX_BYTES, field="file")
        items = report.import_scenarios(raw)
        if args.name is not None:
            if len(items) != 1:
                raise InputError("name", f"the file holds {len(items)} scenarios; --name needs exactly one")
            items = [{**items[0], "name": args.name}]
        ids = store.save_scenarios(items, overwrite=args.overwrite)  # all or nothing
        saved = [{"id": i, "name": s["name"]} for i, s in zip(ids, items)]
        if args.json:
            _print(saved)
        else:
            for r in saved:
                print(f"imported scenario {printable(repr(r['name']))} (id {r['id']})")
    elif cmd == "delete":
        store.delete_scenario(args.name)
        _print({"deleted": args.name}) if args.json else print(f"deleted scenario {printable(repr(args.name))}")
    elif cmd == "rename":
        store.rename_scenario(args.name, args.new_name)
        if args.json:
            _print({"renamed": args.name, "to": args.new_name.strip()})
        else:
            print(f"renamed scenario {printable(repr(args.name))} to {printable(repr(args.new_name.strip()))}")
    elif cmd == "duplicate":
        sid = store.duplicate_scenario(args.name, args.new_name)
        if args.json:
            _print({"id": sid, "name": args.new_name.strip()})
        else:
            print(f"copied scenario {printable(repr(args.name))} to {printable(repr(args.new_name.strip()))} "
                  f"(id {sid})")
    return 0
