"""What both command-line tools share: one-line errors and argument parsing of lists and ranges."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import SynthError


class OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus the error; users asked for one line naming the problem."""

    def error(self, message):
        self.exit(2, f"error: {message} (see --help)\n")


def command_parser(prog: str, description: str):
    """A one-line-error parser with ``--version`` and required sub-commands: (parser, subparsers)."""
    from . import __version__

    p = OneLineParser(prog=prog, description=description)
    p.add_argument("--version", action="version", version=f"sphere-synth {__version__}")
    return p, p.add_subparsers(dest="cmd", required=True, parser_class=OneLineParser)


def _terminate(signum, frame):
    raise KeyboardInterrupt


def run_main(handler, argv=None) -> int:
    """Call ``handler(argv)``; turn any SynthError (or a missing file) into ``error: ...`` and status 2.

    SIGTERM is handled like Ctrl-C, so a sweep stopped by a scheduler says so in one line; what it
    had finished is already in the database (one transaction per population)."""
    import signal

    signal.signal(signal.SIGTERM, _terminate)
    try:
        return handler(argv) or 0
    except SynthError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, PermissionError, IsADirectoryError) as e:
        print(f"error: {e.strerror}: {e.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; finished work is saved (rerun with --resume to continue)", file=sys.stderr)
        return 130


def read_toml(path) -> dict:
    """Parse a TOML file; a syntax error becomes a one-line SynthError naming the file."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as e:
        raise SynthError(f"{path}: not valid TOML ({e})") from None


def parse_int_list(text: str, what: str = "seeds") -> list[int]:
    """'0-4' or '0,2,7' or '0-2,5' -> a sorted list of unique ints."""
    out = set()
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError
                out.update(range(lo, hi + 1))
            elif part:
                out.add(int(part))
    except ValueError:
        raise SynthError(f"cannot read {what} {text!r}: use ranges like 0-4 or lists like 0,2,7") from None
    if not out or min(out) < 0:
        raise SynthError(f"{what} {text!r} must name at least one non-negative integer")
    return sorted(out)
