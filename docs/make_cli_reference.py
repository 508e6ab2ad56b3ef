"""Write docs/cli.md from the CLI's own parser: every command, every flag, its default and help text.

    python docs/make_cli_reference.py

tests/test_docs_and_structure.py fails when a flag is missing from the docs, so run this after adding one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from costmodel.cli import build_parser  # noqa: E402

HEADER = """# Command-line reference

`costmodel <command> [flags]` (or `python -m costmodel ...` from a source checkout). Every command prints a
table, or one JSON object with `--json`. Bad input exits with status 2 and one line `error: <field>: <what is
allowed>`. Generated from the parser by `python docs/make_cli_reference.py`; the test suite checks that every
flag is here.
"""


def _rows(parser: argparse.ArgumentParser) -> list[str]:
    out = ["| flag | default | meaning |", "|---|---|---|"]
    for a in parser._actions:
        if not a.option_strings or "--help" in a.option_strings:
            continue
        flag = ", ".join(f"`{o}`" for o in a.option_strings)
        default = "" if a.default is None or a.default is False or a.default == argparse.SUPPRESS \
            or isinstance(a, argparse._StoreTrueAction) else f"`{a.default}`"
        text = (a.help or "").replace("|", "\\|").replace("\n", " ")
        out.append(f"| {flag} | {default} | {text} |")
    positionals = [a for a in parser._actions if not a.option_strings and a.dest not in ("help",)
                   and not isinstance(a, argparse._SubParsersAction)]
    if positionals:
        out.insert(0, "Arguments: " + ", ".join(f"`{a.dest}` ({a.help or ''})" for a in positionals) + "\n")
    return out


def reference() -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help for c in sub._choices_actions}
    parts = [HEADER]
    for name, p in sub.choices.items():
        parts.append(f"## `{name}`\n\n{helps.get(name, '')}\n")
        nested = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            inner_help = {c.dest: c.help for c in nested[0]._choices_actions}
            for sname, sp in nested[0].choices.items():
                parts.append(f"### `{name} {sname}`\n\n{inner_help.get(sname, '')}\n")
                parts.append("\n".join(_rows(sp)) + "\n")
        else:
            parts.append("\n".join(_rows(p)) + "\n")
    return "\n".join(parts)


if __name__ == "__main__":
    (ROOT / "docs" / "cli.md").write_text(reference(), encoding="utf-8")
    print("wrote docs/cli.md")
