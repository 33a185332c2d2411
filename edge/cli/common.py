"""What every command shares: -v/-q logging, --version, examples after --help, --boards-dir,
quiet third-party libraries, and mapping errors to exit codes."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from edge import DISTRIBUTION, distribution_version
from edge.boards import DEFAULT_MAX_IMAGE_PIXELS
from edge.cli.arg_types import positive
from edge.errors import EdgeError, one_line

EXIT_OK = 0
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130

log = logging.getLogger(__name__)


def add_logging_args(parser: argparse.ArgumentParser) -> None:
    """Add ``-v/--verbose`` and ``-q/--quiet``."""
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output on stderr (repeat for debug)")
    parser.add_argument("-q", "--quiet", action="count", default=0,
                        help="less output on stderr: status lines and warnings off")


def add_common_args(parser: argparse.ArgumentParser, examples: Sequence[str]) -> None:
    """Add ``--version`` and end ``--help`` with ``examples`` (command lines, ``# comments`` ok).

    Subparsers get the same treatment; the first example should be the commonest use.
    """
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples)
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {distribution_version()} ({DISTRIBUTION})",
                        help="print the version of the installed distribution and exit")


def add_boards_dir_arg(parser: argparse.ArgumentParser) -> None:
    """Add ``--boards-dir`` (repeatable; also read from EDGE_BOARDS_DIR)."""
    parser.add_argument("--boards-dir", action="append", default=[], metavar="DIR",
                        help="extra folder of board profiles (*.toml); also EDGE_BOARDS_DIR")


def add_max_image_pixels_arg(parser: argparse.ArgumentParser) -> None:
    """Add ``--max-image-pixels`` (None when not given: the board's limit applies)."""
    parser.add_argument("--max-image-pixels", type=positive(int), default=None, metavar="N",
                        help="refuse images whose header claims more pixels than this, before "
                             "decoding them (default: the board profile's max_image_pixels, "
                             f"else {DEFAULT_MAX_IMAGE_PIXELS:,})")


class OneLineFormatter(logging.Formatter):
    """Each log record on one line: a file name with a line break cannot forge a second one.

    Only the message is escaped; a traceback (``-v``) keeps its lines.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        return one_line(super().formatMessage(record))


# Third-party libraries' own log switches, read when they load or log (set before lazy imports).
QUIET_ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "2",   # TensorFlow/LiteRT C++: errors only (no oneDNN, cpu_feature)
    "OPENCV_LOG_LEVEL": "ERROR",   # OpenCV: no [ WARN ... cap_v4l.cpp ] lines
}
# Python warnings of TensorFlow's converter and Keras ("Statistics for quantized inputs ...").
QUIET_PYTHON_WARNINGS = (r"tensorflow(\.|$)", r"keras(\.|$)")


def configure_logging(verbose: int, quiet: int) -> None:
    """Only CLIs configure handlers; the library just logs. Without ``-v``, third-party
    libraries are told to keep their informational banners and warnings to themselves.
    """
    level = logging.WARNING - 10 * verbose + 10 * quiet
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter("%(name)s: %(levelname)s: %(message)s"))
    logging.basicConfig(level=max(logging.DEBUG, min(level, logging.CRITICAL)),
                        handlers=[handler])
    if verbose <= 0:
        quiet_third_party()


def quiet_third_party() -> None:
    """Silence OpenCV and TensorFlow banners; a value the user set in the environment wins.

    OpenCV reads its variable only when it loads, so an OpenCV already imported by the command
    module is told directly (this imports nothing new).
    """
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    for module in QUIET_PYTHON_WARNINGS:
        warnings.filterwarnings("ignore", module=module)
    cv2 = sys.modules.get("cv2")
    if cv2 is not None and os.environ["OPENCV_LOG_LEVEL"].upper() == "ERROR":
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def _unexpected(prog: str, error: BaseException) -> int:
    """One line for a failure that is not one of ours; the traceback only under -v."""
    if isinstance(error, MemoryError):
        what = "out of memory (an input too large for this machine?)"
    elif isinstance(error, RecursionError):
        what = "input nested too deeply to process"
    else:
        what = f"internal error: {type(error).__name__}: {error}"
    hint = ("; if the input looks fine, this is a bug in edge: please report it with the "
            "output of the same command run with -v")
    print(one_line(f"{prog}: error: {what}{hint}"), file=sys.stderr)
    log.info("traceback of the error above:", exc_info=error)
    return EXIT_ERROR


def run_command(prog: str, body: Callable[[], int]) -> int:
    """Run a command body, turning every failure into one line on stderr and exit code 2.

    Our errors print their message; anything else (``cv2.error``, ``MemoryError``,
    ``RecursionError``, a bug) prints one line saying how to report it, and its traceback only
    with ``-v``.
    """
    try:
        return body()
    except EdgeError as e:
        print(one_line(f"{prog}: error: {e}"), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of our stdout went away (e.g. `| head`); that is not an error of ours.
        sys.stderr.close()
        return EXIT_OK
    except Exception as e:  # the boundary: nothing escapes as a traceback
        return _unexpected(prog, e)


def print_json(data: Any) -> None:
    """One JSON document on stdout."""
    json.dump(data, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")
