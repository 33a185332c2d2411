"""``python -m edge COMMAND ...`` runs the same commands as the ``edge-*`` scripts."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "inspect": "edge.cli.inspect",
    "classify": "edge.cli.classify",
    "run": "edge.cli.run",
    "listen": "edge.cli.listen",
    "model": "edge.cli.model",
    "export": "firmware_export.cli.export",
    "flash": "firmware_export.cli.flash",
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--version"]:
        from edge import DISTRIBUTION, distribution_version

        print(f"python -m edge {distribution_version()} ({DISTRIBUTION})")
        return 0
    if not args or args[0] in ("-h", "--help") or args[0] not in COMMANDS:
        names = ", ".join(COMMANDS)
        print(f"usage: python -m edge COMMAND [ARGS...]\ncommands: {names}\n"
              "each also installs as edge-COMMAND; run it with --help for its options")
        return 0 if args and args[0] in ("-h", "--help") else 2
    module = importlib.import_module(COMMANDS[args[0]])
    result: int = module.main(args[1:])
    return result


if __name__ == "__main__":
    sys.exit(main())
