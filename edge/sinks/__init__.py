"""Where labels go: JSON lines (stdout or a file), the serial label protocol, an MQTT broker.

One interface (:class:`~edge.sinks.base.LabelSink`), one module per kind, each imported only
when chosen, so ``import edge.sinks`` needs neither pyserial nor paho-mqtt. :class:`SinkOptions`
is the sinks' part of ``edge-run``'s options; :func:`open_sinks` opens what it asks for.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from edge.errors import SinkError
from edge.sinks.base import LabelSink, OnChangeSink

if TYPE_CHECKING:
    from edge.sinks.mqtt_options import MqttOptions

__all__ = ["LabelSink", "OnChangeSink", "SinkOptions", "open_sinks"]


@dataclass(frozen=True)
class SinkOptions:
    """Which sinks a run writes to.

    Attributes:
        output: a JSON-lines file to create.
        serial: port or URL; ``""`` takes the board profile's default port.
        serial_format: ``json`` or ``binary``.
        baud: serial speed; None takes the board profile's.
        on_change: pass an event on only when its top label changes.
        stdout: also print JSON lines when another sink is given.
        mqtt: the broker to publish to.
        device_name: sent with every serial record when given (``--device-name``).
    """

    output: str | None = None
    serial: str | None = None
    serial_format: str = "json"
    baud: int | None = None
    on_change: bool = False
    stdout: bool = False
    mqtt: MqttOptions | None = None
    device_name: str | None = None


def open_sinks(options: SinkOptions, stack: ExitStack, stdout: TextIO, *,
               default_port: str = "", default_baud: int = 115200) -> list[LabelSink]:
    """Open the sinks ``options`` ask for (stdout when no other), registered on ``stack``.

    Raises:
        SinkError: a sink cannot be opened (the message names it).
        BackendError: the package a sink needs is not installed.
    """
    sinks: list[LabelSink] = []
    if options.output is not None:
        from edge.sinks.jsonl import JsonLinesSink

        sinks.append(stack.enter_context(JsonLinesSink(path=options.output)))
    if options.serial is not None:
        sinks.append(stack.enter_context(_serial_sink(options, default_port, default_baud)))
    if options.mqtt is not None:
        from edge.sinks.mqtt import MqttSink

        sinks.append(stack.enter_context(MqttSink.open(options.mqtt)))
    if not sinks or options.stdout:
        from edge.sinks.jsonl import JsonLinesSink

        sinks.insert(0, JsonLinesSink(stdout))
    if options.on_change:
        sinks = [OnChangeSink(s) for s in sinks]
    return sinks


def _serial_sink(options: SinkOptions, default_port: str, default_baud: int) -> LabelSink:
    from edge.sinks.serial import SerialSink

    port = options.serial or default_port
    if not port:
        raise SinkError("--serial needs a port: this board profile has no serial_port")
    return SerialSink(port, baud=options.baud or default_baud, fmt=options.serial_format,
                      device=options.device_name)
