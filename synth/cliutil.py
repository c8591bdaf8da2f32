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


def path_arg(text: str) -> Path:
    """An argparse type for a file or folder: '' (which Path reads as the current folder) is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not a path: name a file or folder")
    return Path(text)


def command_parser(prog: str, description: str):
    """A one-line-error parser with ``--version`` and required sub-commands: (parser, subparsers)."""
    from . import __version__

    p = OneLineParser(prog=prog, description=description)
    p.add_argument("--version", action="version", version=f"sphere-synth {__version__}")
    return p, p.add_subparsers(dest="cmd", required=True, parser_class=OneLineParser)


def _terminate(signum, frame):
    raise KeyboardInterrupt


def run_main(handler, argv=None, resumable=("sweep", "ablate")) -> int:
    """Call ``handler(argv)``; turn any SynthError (or a missing file) into ``error: ...`` and status 2.

    SIGTERM is handled like Ctrl-C, so a sweep stopped by a scheduler says so in one line, at once
    (the populations in flight are abandoned, ``Runner.abort``); what it had finished is already in
    the database (one transaction per population). Only the commands in ``resumable`` have a
    ``--resume`` to advise; the others write all or nothing, so they are simply run again."""
    import signal

    signal.signal(signal.SIGTERM, _terminate)
    try:
        return handler(argv) or 0
    except SynthError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # missing file, permission, read-only or full disk, a file where a folder should be
        where = f": {e.filename}" if e.filename else ""
        print(f"error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        args = sys.argv[1:] if argv is None else list(argv)
        command = next((x for x in args if not x.startswith("-")), None)
        if command in resumable:
            print("error: interrupted; work in flight was abandoned, finished work is saved (rerun with --resume to "
                  "continue)", file=sys.stderr)
        else:
            print("error: interrupted; no file was left half-written: run the command again", file=sys.stderr)
        return 130


def read_toml(path) -> dict:
    """Parse a TOML file; a syntax error becomes a one-line SynthError naming the file."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:  # TOML is UTF-8 by definition
        raise SynthError(f"{path}: not valid TOML (not UTF-8 text: byte {e.object[e.start]:#04x} at offset "
                         f"{e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise SynthError(f"{path}: not valid TOML ({e})") from None


SEED_MAX = 2**32 - 1  # seeds go into torch generators and SQLite integers
MAX_LIST = 100_000


def parse_int_list(text: str, what: str = "seeds", max_value: int = SEED_MAX, max_count: int = MAX_LIST) -> list[int]:
    """'0-4' or '0,2,7' or '0-2,5' -> a sorted list of unique ints in [0, max_value], at most max_count."""
    out = set()
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError
                if hi > max_value or hi - lo + 1 > max_count:  # before expanding: 0-10**10 is not a list
                    out.add(max_value + 1)  # reported below, outside this ValueError handler
                    break
                out.update(range(lo, hi + 1))
            elif part:
                out.add(int(part))
    except ValueError:
        raise SynthError(f"cannot read {what} {text!r}: use ranges like 0-4 or lists like 0,2,7") from None
    if out and (max(out) > max_value or len(out) > max_count):
        raise SynthError(f"{what} {text!r}: at most {max_count} values, each at most {max_value}")
    if not out or min(out) < 0:
        raise SynthError(f"{what} {text!r} must name at least one non-negative integer")
    return sorted(out)
