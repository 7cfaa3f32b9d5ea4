"""CLI commands for experiments, results, reports and the demo (placeholder for issue 5)."""

from __future__ import annotations


def add_commands(sub) -> None:
    p = sub.add_parser("demo", help="the headline study on an embedded default")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args) -> int:
    from overtensor.cli import main

    return main(["fit", "--order", "3", "--dim", "100", "--rank", "10", "--width", "50"])
