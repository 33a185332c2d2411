"""Labels to an MQTT broker through an on-disk spool, on paho-mqtt 2.x (imported only here).

:meth:`MqttSink.write` only appends to the :class:`~edge.sinks.spool.Spool` (a local SQLite
insert), so neither the inference loop nor the sink writer ever waits on the network. One
delivery thread owns the connection: it publishes from the spool's head in order with QoS 1,
at most :data:`WINDOW` unacknowledged at a time, removes what the broker acknowledged, and after
a lost connection reconnects with :class:`~edge.backoff.Backoff` and starts again from the head.
A message whose acknowledgement was lost is therefore sent twice: receivers de-duplicate by the
payload's ``run`` and ``seq``. On connect it publishes the retained ``online`` status and the
Home Assistant discovery messages; the broker publishes the retained ``offline`` last will if
we vanish.

Faults stop at most the delivery, never the labels: a queued message the client refuses (a
topic with wildcards, an empty one) is dropped and counted; a spool that cannot be read or
written is retried with backoff; and should the thread still end by an unforeseen error, that
is logged, the counters carry ``failed`` and :attr:`MqttSink.failure` says why, so commands end
with a failing exit code. At the end, queued messages are delivered for up to ``--mqtt-drain``
seconds, reconnecting meanwhile if the broker is away.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge.backoff import Backoff
from edge.errors import BackendError, SinkError
from edge.events import LabelEvent
from edge.sinks import mqtt_topics as topics
from edge.sinks.base import LabelSink
from edge.sinks.mqtt_options import BrokerUrl, MqttOptions, default_state_dir, device_id
from edge.sinks.mqtt_options import parse_broker_url as parse_url
from edge.sinks.spool import Spool, SpoolError

log = logging.getLogger(__name__)

WINDOW = 20  # QoS 1 messages in flight
CONNECT_TIMEOUT_S = 10.0
LOOP_S = 0.02  # longest wait in the network loop, so new messages go out promptly
AUTH_FAILURES = (134, 135)  # MQTT 5 reason codes paho maps CONNACK 4 and 5 to


def _paho() -> Any:
    try:
        import paho.mqtt.client as mqtt
    except ImportError as e:
        raise BackendError("paho-mqtt is not installed; pip install 'edge-labels[mqtt]' "
                           "(paho-mqtt>=2)") from e
    if not hasattr(mqtt, "CallbackAPIVersion"):
        raise BackendError("paho-mqtt 1.x is installed; edge needs 2.x: pip install -U "
                           "'paho-mqtt>=2'")
    return mqtt


class _Link:
    """One paho client and one connection; its callbacks only record what happened."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.connack: Any = None
        self.down = False
        self.acked: list[int] = []
        self.inflight: dict[int, int] = {}  # paho message id -> spool id
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        self.connack = reason

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        self.down = True

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any,
                    properties: Any) -> None:
        spool_id = self.inflight.pop(mid, None)
        if spool_id is not None:
            self.acked.append(spool_id)

    def close(self) -> None:
        try:
            self.client.disconnect()
            self.client.loop(0.01)
        except (OSError, ValueError):
            pass
        try:
            self.client.socket() and self.client.socket().close()
        except OSError:
            pass


class MqttSink(LabelSink):
    """Publishes label events (and status, discovery) for one device; see the module doc.

    Use :meth:`open`; it connects once at start, so a wrong password or an untrusted
    certificate is an error at once, while an unreachable broker only delays delivery.
    """

    name = "mqtt"

    def __init__(self, url: BrokerUrl, device: str, spool: Spool, options: MqttOptions) -> None:
        self.url = url
        self.device = device
        self.spool = spool
        self.options = options
        self.delivered = 0
        self.reconnects = 0
        self.rejected = 0
        self.failure: str | None = None
        self._closed = False
        self._mqtt = _paho()
        self._backoff = Backoff(initial_s=0.1, max_s=5.0)
        self._storage_backoff = Backoff(initial_s=0.1, max_s=5.0)
        self._storage_until = 0.0
        self._storage_failing = False
        self._down_since: float | None = None
        self._counted: dict[str, set[str]] = {}  # device -> labels with a count sensor
        self._count_news: list[tuple[str, str]] = []  # (device, label) to announce
        self._count_full: set[str] = set()
        self._link: _Link | None = None
        self._last_sent = 0
        self._devices = {device}
        self._announced: set[str] = set()
        self._status: dict[str, Any] | None = None
        self._status_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edge-mqtt", daemon=True)

    @classmethod
    def open(cls, options: MqttOptions) -> MqttSink:
        """Parse the options, open the spool, connect once and start delivering.

        Raises:
            SinkError: bad URL or device name, unusable spool, CA file or TLS set-up, the
                broker refused the login, or its certificate is not trusted.
            BackendError: paho-mqtt is missing.
        """
        url = parse_url(options.url)
        device = device_id(options.device_name)
        _paho()
        state = Path(options.state_dir) if options.state_dir else default_state_dir()
        spool = Spool(state / f"mqtt-{device}.sqlite3", options.spool_max)
        sink = cls(url, device, spool, options)
        try:
            sink._link = sink._connect(first=True)
        except BaseException:
            spool.close()
            raise
        sink._thread.start()
        return sink

    # --- the sink interface (called from the sink writer thread) ----------------------------

    def write(self, event: LabelEvent) -> None:
        self.publish_label(event.as_dict())

    def publish_label(self, data: dict[str, Any], device: str | None = None, *,
                      announce: bool = True) -> None:
        """Queue one label (a JSON object) for ``device`` (default: this sink's device).

        Never raises for a spool fault (see :class:`~edge.sinks.spool.Spool`). With
        ``announce``, a new device gets its Home Assistant discovery messages and each label
        in the object's ``counts`` a count sensor (at most ``topics.MAX_COUNT_SENSORS`` per
        device); the gateway passes False for devices beyond its bound.
        """
        device = device or self.device
        if announce:
            if device not in self._devices:
                with self._status_lock:
                    self._devices.add(device)
            counts = data.get("counts")
            if isinstance(counts, dict) and counts:
                self._note_counts(device, counts)
        self.spool.append(topics.label_topic(self.url.prefix, device),
                          topics.label_payload(data, device))
        self._wake.set()

    def _note_counts(self, device: str, counts: dict[str, Any]) -> None:
        known = self._counted.setdefault(device, set())
        for label in counts:
            if label in known or not isinstance(label, str):
                continue
            if len(known) >= topics.MAX_COUNT_SENSORS:
                if device not in self._count_full:
                    self._count_full.add(device)
                    log.warning("MQTT device %s: %d count sensors announced to Home Assistant; "
                                "not announcing more (the label events still carry every "
                                "count)", device, topics.MAX_COUNT_SENSORS)
                return
            with self._status_lock:
                known.add(label)
                self._count_news.append((device, label))

    def status(self, summary: Mapping[str, Any]) -> None:
        with self._status_lock:
            self._status = dict(summary)
        self._wake.set()

    def counters(self) -> dict[str, int]:
        numbers = {"queued": len(self.spool), "delivered": self.delivered,
                   "dropped": self.spool.dropped + self.rejected, "reconnects": self.reconnects}
        if self.failure is not None:
            numbers["failed"] = 1
        return numbers

    def close(self) -> None:
        """Deliver what is queued (up to the drain time, reconnecting meanwhile), disconnect.

        What could not be delivered stays in the spool for the next run (one line says how
        many).
        """
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            self._stop.set()
            self._wake.set()
            self._thread.join()
        left = len(self.spool)
        if left and not self.spool.in_memory and self._thread.ident is not None:
            log.warning("MQTT: %s message(s) stay spooled in %s for the next run", f"{left:,}",
                        self.spool.path)
        elif left and self._thread.ident is not None:
            log.warning("MQTT: %s message(s) were not delivered and are lost (the spool was in "
                        "memory)", f"{left:,}")
        self.spool.close()

    # --- the delivery thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._deliver()
        except Exception as e:  # the last guard: a dead thread must be visible, never silent
            self.failure = f"{type(e).__name__}: {e}"
            log.error("MQTT delivery stopped: %s; %s message(s) stay in the spool %s (the "
                      "labels go on; this run will end with exit code 2)", self.failure,
                      f"{len(self.spool):,}", self.spool.path)
            log.debug("MQTT delivery thread", exc_info=True)
            link, self._link = self._link, None
            if link is not None:
                link.close()
            return
        try:
            self._goodbye()
        except Exception as e:  # everything was delivered; only the offline status is missing
            log.warning("MQTT: could not publish the offline status: %s", e)

    def _deliver(self) -> None:
        drain_until: float | None = None
        while True:
            if self._stop.is_set() and drain_until is None:
                drain_until = time.monotonic() + self.options.drain_timeout_s
            if drain_until is not None and (not len(self.spool) or
                                            time.monotonic() >= drain_until):
                return
            link = self._link
            if link is None:
                delay = self._backoff.next_delay()
                if drain_until is not None:
                    time.sleep(max(0.0, min(delay, drain_until - time.monotonic())))
                elif self._stop.wait(delay):
                    continue
                self._reconnect()
                continue
            self._pump(link)
            if link.down:
                self._down_since = time.monotonic()
                log.warning("MQTT broker %s: connection lost; %s message(s) queued, "
                            "reconnecting", self.url.redacted(), f"{len(self.spool):,}")
                self._drop_link()

    def _reconnect(self) -> None:
        try:
            link = self._connect(first=False)
        except SinkError as e:
            log.error("%s", e)
            return
        if link is not None:
            self._link = link
            self.reconnects += 1
            since, self._down_since = self._down_since, None
            done = (f"reconnected after {time.monotonic() - since:.1f} s" if since is not None
                    else "connected")
            log.warning("MQTT broker %s: %s, %s queued", self.url.redacted(), done,
                        f"{len(self.spool):,}")

    def _drop_link(self) -> None:
        link, self._link = self._link, None
        self._last_sent = 0  # start again from the head: unacknowledged ones go out again
        if link is not None:
            link.close()

    def _pump(self, link: _Link) -> None:
        link.client.loop(LOOP_S if not self._wake.is_set() else 0.0)
        self._wake.clear()
        if link.down or time.monotonic() < self._storage_until:
            return
        try:
            self._move(link)
        except SpoolError as e:
            delay = self._storage_backoff.next_delay()
            self._storage_until = time.monotonic() + delay
            if not self._storage_failing:
                self._storage_failing = True
                log.warning("%s; retrying with backoff (up to %.0f s)", e,
                            self._storage_backoff.max_s)
            return
        if self._storage_failing:
            self._storage_failing = False
            self._storage_backoff.reset()
            log.warning("MQTT: the message spool %s works again", self.spool.path)

    def _move(self, link: _Link) -> None:
        """Forget what was acknowledged, publish status, fill the window from the spool.

        Raises:
            SpoolError: the spool failed (acknowledged ids are kept for the next try).
        """
        failed: SpoolError | None = None
        if link.acked:
            try:
                self.spool.remove(link.acked)
                self.delivered += len(link.acked)
                link.acked = []
            except SpoolError as e:  # keep them for the next try; the window moves on
                failed = e
        try:
            self._fill(link)
        finally:
            if failed is not None:
                raise failed

    def _fill(self, link: _Link) -> None:
        self._publish_status(link)
        room = WINDOW - len(link.inflight)
        if room <= 0:
            return
        for message in self.spool.peek(self._last_sent, room):
            why = topics.unpublishable(message.topic)
            try:
                if why is not None:
                    raise ValueError(why)
                info = link.client.publish(message.topic, message.payload, qos=1)
            except (ValueError, TypeError) as e:
                self._reject(message.id, message.topic, e)
                continue
            if info.rc != self._mqtt.MQTT_ERR_SUCCESS:
                link.down = True
                return
            link.inflight[info.mid] = message.id
            self._last_sent = message.id

    def _reject(self, spool_id: int, topic: str, error: Exception) -> None:
        """Drop a queued message the client refuses to publish (counted as dropped)."""
        self._last_sent = max(self._last_sent, spool_id)
        self.rejected += 1
        (log.warning if self.rejected == 1 else log.debug)(
            "MQTT: dropped a queued message the client refuses (topic %r: %s); such drops are "
            "counted as dropped", topic[:80], error)
        self.spool.remove([spool_id])

    def _publish_status(self, link: _Link) -> None:
        with self._status_lock:  # the writer thread adds devices and labels meanwhile
            new = {d: sorted(self._counted.get(d, ())) for d in self._devices - self._announced}
            status, self._status = self._status, None
            news, self._count_news = self._count_news, []
        for device, labels in new.items():
            for topic, payload in topics.discovery_messages(self.url.prefix, device):
                link.client.publish(topic, payload, qos=1, retain=True)
            for label in labels:
                link.client.publish(*topics.count_discovery_message(self.url.prefix, device,
                                                                    label), qos=1, retain=True)
            self._announced.add(device)
        for device, label in news:
            if device in self._announced:  # else announced with its device above
                link.client.publish(*topics.count_discovery_message(self.url.prefix, device,
                                                                    label), qos=1, retain=True)
        if status is not None:
            numbers = {k: v for k, v in status.items() if k != "sinks"}
            payload = topics.status_payload(topics.ONLINE, {**numbers, "mqtt": self.counters()})
            link.client.publish(topics.status_topic(self.url.prefix, self.device), payload,
                                qos=1, retain=True)

    def _goodbye(self) -> None:
        """Retained offline status (a clean disconnect sends no last will), then disconnect."""
        link, self._link = self._link, None
        if link is None:
            return
        info = link.client.publish(topics.status_topic(self.url.prefix, self.device),
                                   topics.status_payload(topics.OFFLINE,
                                                         {"mqtt": self.counters()}),
                                   qos=1, retain=True)
        deadline = time.monotonic() + 2.0
        while not info.is_published() and not link.down and time.monotonic() < deadline:
            link.client.loop(LOOP_S)
        link.close()

    # --- connecting ---------------------------------------------------------------------------

    def _client(self) -> Any:
        mqtt = self._mqtt
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=f"edge-{self.device}-{os.getpid()}",
                             protocol=mqtt.MQTTv311, clean_session=True)
        if self.url.username is not None:
            client.username_pw_set(self.url.username, self.url.password)
        if self.url.tls:
            try:
                client.tls_set(ca_certs=self.options.ca_file)
            except (OSError, ssl.SSLError, ValueError) as e:
                raise SinkError(f"--mqtt-ca {self.options.ca_file}: cannot use it as CA "
                                f"certificates: {e}; give a PEM file") from e
        client.will_set(topics.status_topic(self.url.prefix, self.device),
                        topics.status_payload(topics.OFFLINE), qos=1, retain=True)
        client.max_inflight_messages_set(WINDOW)
        return client

    def _connect(self, *, first: bool) -> _Link | None:
        """A connected link; None when the broker cannot be reached (retry later).

        Raises:
            SinkError: the broker refused the login, or TLS cannot work with these settings.
        """
        where = self.url.redacted()
        link = _Link(self._client())
        try:
            link.client.connect(self.url.host, self.url.port, self.options.keepalive_s)
        except ssl.SSLCertVerificationError as e:
            raise SinkError(f"--mqtt {where}: the broker's certificate is not trusted "
                            f"({e.verify_message}); pass its CA with --mqtt-ca FILE") from e
        except (OSError, ssl.SSLError) as e:
            (log.warning if first else log.debug)(
                "MQTT broker %s not reachable (%s); queueing labels until it is", where, e)
            return None
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while link.connack is None and not link.down and time.monotonic() < deadline:
            link.client.loop(0.05)
        reason = link.connack
        if reason is None or reason.is_failure:
            link.close()
            if reason is not None and reason.value in AUTH_FAILURES:
                raise SinkError(f"--mqtt {where}: the broker refused the login ({reason}); "
                                "check the user name and password in the URL")
            (log.warning if first else log.debug)(
                "MQTT broker %s did not accept the connection (%s); queueing labels",
                where, reason or "no answer")
            return None
        self._backoff.reset()
        self._announced.clear()
        log.info("connected to MQTT broker %s as %s", where, self.device)
        with self._status_lock:
            self._status = self._status or {}
        return link
