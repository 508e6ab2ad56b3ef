"""``costmodel ...`` (or ``python -m costmodel ...``): the same numbers as the dashboard, as a table or one JSON object.

Each command module has ``register(sub)``, which adds its parser(s) with ``set_defaults(run=fn)``;
``fn(args) -> int`` is the exit status. Shared flags live in ``costmodel.cli.args``. Bad input exits with
status 2 and one line ``error: <field>: <what is allowed>``.
"""

from __future__ import annotations

import sys

from ..errors import InputError
from .. import __version__
from . import dashboard, estimate, plans, scenarios
from .args import Parser
from .output import flush_notes, one_line


def _command_modules():
    # the profiler's commands live beside the profiler (it imports torch only inside its commands)
    from ..profiler import cli as profiler_cli

    return (estimate, plans, scenarios, profiler_cli, dashboard)


def build_parser() -> Parser:
    parser = Parser(prog="costmodel", description="Estimate what a deep-learning model costs.")
    parser.add_argument("--version", action="version", version=f"costmodel {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in _command_modules():
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    flush_notes(False)
    try:
        args = build_parser().parse_args(argv)
        rc = args.run(args)
    except InputError as err:
        flush_notes(False)  # a failing command prints its one error line only
        print(f"error: {one_line(err)}", file=sys.stderr)  # always exactly one line
        return 2
    except BrokenPipeError:  # e.g. piped into `head`
        return 0
    flush_notes()
    return rc


def entry_point() -> None:
    """The ``costmodel`` console script (pyproject.toml)."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
