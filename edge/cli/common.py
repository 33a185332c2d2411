"""What every command shares: -v/-q logging, --boards-dir, and mapping errors to exit codes."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from edge.errors import EdgeError

EXIT_OK = 0
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def add_logging_args(parser: argparse.ArgumentParser) -> None:
    """Add ``-v/--verbose`` and ``-q/--quiet``."""
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output on stderr (repeat for debug)")
    parser.add_argument("-q", "--quiet", action="count", default=0,
                        help="less output on stderr: status lines and warnings off")


def add_boards_dir_arg(parser: argparse.ArgumentParser) -> None:
    """Add ``--boards-dir`` (repeatable; also read from EDGE_BOARDS_DIR)."""
    parser.add_argument("--boards-dir", action="append", default=[], metavar="DIR",
                        help="extra folder of board profiles (*.toml); also EDGE_BOARDS_DIR")


def configure_logging(verbose: int, quiet: int) -> None:
    """Only CLIs configure handlers; the library just logs."""
    level = logging.WARNING - 10 * verbose + 10 * quiet
    logging.basicConfig(level=max(logging.DEBUG, min(level, logging.CRITICAL)),
                        format="%(name)s: %(levelname)s: %(message)s", stream=sys.stderr)


def run_command(prog: str, body: Callable[[], int]) -> int:
    """Run a command body, turning our errors into one line on stderr and exit code 2."""
    try:
        return body()
    except EdgeError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of our stdout went away (e.g. `| head`); that is not an error of ours.
        sys.stderr.close()
        return EXIT_OK


def print_json(data: Any) -> None:
    """One JSON document on stdout."""
    json.dump(data, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")
