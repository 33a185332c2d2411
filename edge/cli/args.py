"""Argument groups more than one command shares, and options parts built from parsed args.

Each options part (a frozen dataclass) is filled by :func:`part_from_args` from the parsed
arguments whose ``dest`` is one of its field names, so an option is declared once, as an
argument, and once, as a field, and never listed again.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

from edge.boards import DELEGATES
from edge.cli.arg_types import non_negative_int, positive
from edge.runtime.backends import AUTO_BACKENDS, BACKEND_NAMES, TFLM
from edge.runtime.policy import RuntimeOptions

if TYPE_CHECKING:  # imported when asked for: edge-classify has no MQTT, and starts faster
    from edge.sinks.mqtt_options import MqttOptions

T = TypeVar("T")


def part_from_args(cls: type[T], args: argparse.Namespace, **extra: Any) -> T:
    """``cls`` filled from the arguments named like its fields (``extra`` for the rest)."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    values = {name: getattr(args, name) for name in names if hasattr(args, name)}
    return cls(**{**values, **extra})


def add_runtime_args(parser: argparse.ArgumentParser, *, board_default: str | None) -> None:
    """``--board``, ``--threads``, ``--backend``, ``--delegate``, ``--device``: one policy.

    What is not given comes from the board profile, then the model (see
    :mod:`edge.runtime.policy`).
    """
    group = parser.add_argument_group(
        "interpreter", "what is not given comes from the board profile, then the model")
    default = f"default: {board_default}" if board_default else "no default"
    group.add_argument("--board", default=board_default,
                       help=f"board profile giving threads, delegate and device defaults "
                            f"({default}); see --list-boards")
    group.add_argument("--threads", type=non_negative_int, default=None, metavar="N",
                       help="interpreter threads (default: the board's, else every core; "
                            "0 = every core)")
    group.add_argument("--backend", choices=BACKEND_NAMES, default=None,
                       help="interpreter package (default: the first installed of "
                            f"{', '.join(AUTO_BACKENDS)}); {TFLM}: TensorFlow Lite Micro in a "
                            "child process, for models made for microcontrollers")
    group.add_argument("--delegate", choices=DELEGATES, default=None,
                       help="edgetpu or none (default: edgetpu when the model was compiled for "
                            "it, or the board expects a TPU and the model can use one)")
    group.add_argument("--device", default=None,
                       help="Edge TPU: usb, usb:N, pci, pci:N or :N (implies --delegate "
                            "edgetpu; default: the board's)")
    group.add_argument("--max-activation-mb", type=positive(int), default=None, metavar="MB",
                       help="refuse models whose activations (non-constant tensors) add up to "
                            "more (default: the board's max_activation_mb, else 1024)")


def runtime_from_args(args: argparse.Namespace) -> RuntimeOptions:
    return part_from_args(RuntimeOptions, args)


def add_mqtt_args(parser: argparse.ArgumentParser) -> None:
    """``--mqtt URL`` and what goes with it (``edge-run`` and the ``edge-listen`` gateway)."""
    group = parser.add_argument_group(
        "MQTT", "publish labels to a broker through an on-disk spool (needs the mqtt extra)")
    group.add_argument("--mqtt", metavar="URL",
                       help="mqtt://[user:pass@]host[:port]/prefix, or mqtts:// for TLS; "
                            "topics PREFIX/DEVICE/label and PREFIX/DEVICE/status")
    group.add_argument("--mqtt-ca", metavar="FILE",
                       help="CA certificate(s) (PEM) the mqtts:// broker's certificate is checked "
                            "against (default: the system's)")
    group.add_argument("--device-name", metavar="NAME",
                       help="this device's topic level and Home Assistant id (default: the "
                            "host name)")
    group.add_argument("--state-dir", metavar="DIR",
                       help="folder of the message spool (default: $STATE_DIRECTORY, else "
                            "~/.local/state/edge)")
    group.add_argument("--spool-max", type=positive(int), default=100_000, metavar="N",
                       help="messages the spool keeps while the broker is away; the oldest "
                            "are dropped beyond (default: 100000)")
    group.add_argument("--mqtt-drain", dest="drain_timeout_s", type=positive(float),
                       default=10.0, metavar="S",
                       help="at the end, keep delivering queued messages for up to S seconds, "
                            "reconnecting if the broker is away (default: 10); the rest waits "
                            "in the spool for the next run")


def mqtt_from_args(args: argparse.Namespace) -> MqttOptions | None:
    """The MQTT part of the options, or None without ``--mqtt``."""
    if args.mqtt is None:
        return None
    from edge.sinks.mqtt_options import MqttOptions

    return part_from_args(MqttOptions, args, url=args.mqtt, ca_file=args.mqtt_ca)
