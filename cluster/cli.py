"""The `casaflow` command line: one subcommand module per job, each registering its own parser."""

import argparse
import importlib
import sys

COMMAND_MODULES = (
    "cluster.commands.simulate",
    "cluster.commands.up",
    "cluster.commands.run",
    "cluster.commands.score",
    "cluster.commands.detector",
)


class _Parser(argparse.ArgumentParser):
    """Argument errors as one line on stderr and exit code 2, without the usage block."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="casaflow", description="City-scale traffic video analytics on Ray.")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
