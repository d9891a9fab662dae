"""``nas`` command line: one sub-command module per job, registered in ``_COMMANDS``.

Every command module exposes ``register(subparsers)``, which adds its parser and sets
``func=run`` where ``run(args) -> int``.  Bad input raises ``UsageError``/``StoreError``/
``ValueError`` and is reported as one line on stderr with exit code 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# sub-command modules, in help order
_COMMANDS = (
    "nas.commands.search",    # nas search
    "nas.commands.refine",    # nas refine
    "nas.commands.results",   # nas trials / pareto / show
    "nas.commands.export",    # nas export
    "nas.commands.references",  # nas show-reference
    "dashboard.command",      # nas dashboard
)


class _OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``nas search: error: ...``) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        hint = " (a value starting with '-' needs '=', e.g. --budget=-1trials)" if "expected one argument" in message else ""
        self.exit(2, f"{self.prog}: error: {message}{hint}; see `{self.prog} --help`\n")


def one_line(message: str) -> str:
    """An error message on one line, whatever a library put in it (several lines become "; "-joined)."""
    return "; ".join(line.strip() for line in message.splitlines() if line.strip()) or "(no details)"


def _package_version() -> str:
    """The installed distribution's version; ``nas.__version__`` when run from a tree that is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mixer-nas")
    except PackageNotFoundError:
        import nas

        return nas.__version__


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrorParser(
        prog="nas", description="Hardware-aware NAS over per-stage token mixers in MetaFormer backbones.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # command not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from nas.errors import UsageError
    from nas.store import StoreError
    from nas.store.engine import error_line

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UsageError, StoreError, ValueError) as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:  # a database failure no store method put into words
        print(f"error: database error: {error_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `nas trials | head`: the reader left, nothing more to say
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
