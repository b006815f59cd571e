"""A TCP proxy in front of a real broker that can answer chosen Kafka requests with an error,
or not at all.

Some broker answers are rare in a test yet real in production: a group coordinator that
moves while a consumer asks it for committed offsets answers ``NOT_COORDINATOR``; a broker
just started again (or a VM frozen) leaves a metadata request unanswered until the client
gives up. The proxy forwards every byte both ways and reads only the frames' headers; when
armed, it replaces the broker's answer to the next ``OffsetFetch`` of a group by that error,
as a coordinator that has just lost the group would send it, or drops the answer to the
next request of a kind that names a topic. The broker advertises the proxy's port, so
every client connection (the broker's own included) goes through it.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from computeinfra.kafka.broker import BrokerConfig, LocalBroker
from computeinfra.testing.stack import free_port

__all__ = ["METADATA", "NOT_COORDINATOR", "KafkaProxy", "proxied_broker", "proxy"]

METADATA = 3
OFFSET_FETCH = 9
NOT_COORDINATOR = 16
# OffsetFetch v8 and later ask for groups (KIP-709); librdkafka 2.x sends v8 or v9 to Kafka 4.
GROUPS_FROM_VERSION = 8
# A connection's requests whose answer is replaced: correlation id -> the OffsetFetch's
# group id (answered NOT_COORDINATOR), or None (not answered at all).
Pending = dict[bytes, bytes | None]


def _read_exact(sock: socket.socket, count: int) -> bytes:
    data = bytearray()
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return bytes(data)


def _frames(sock: socket.socket) -> Iterator[bytes]:
    """Each Kafka frame's payload (the 4-byte size removed), until the socket closes."""
    try:
        while True:
            (size,) = struct.unpack(">i", _read_exact(sock, 4))
            yield _read_exact(sock, size)
    except OSError:
        return


def _uvarint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def _group(request: bytes) -> bytes:
    """The first group id of an OffsetFetch request (v8+: header v2, then a compact array of
    groups); librdkafka asks for one group at a time."""
    (client_id_size,) = struct.unpack(">h", request[8:10])
    at = 10 + max(client_id_size, 0)
    tags, at = _uvarint(request, at)
    for _ in range(tags):
        _tag, at = _uvarint(request, at)
        size, at = _uvarint(request, at)
        at += size
    _count, at = _uvarint(request, at)
    size, at = _uvarint(request, at)
    return request[at : at + size - 1]


def _failed_answer(correlation: bytes, group: bytes, error: int) -> bytes:
    """An OffsetFetch v8+ response: the group, with no topics and ``error``."""
    assert len(group) < 127, "a one-byte varint length"
    body = bytearray(correlation + b"\x00")  # response header v1: no tagged fields
    body += struct.pack(">i", 0)  # throttle_time_ms
    body += b"\x02" + bytes([len(group) + 1]) + group  # one group
    body += b"\x01"  # no topics
    body += struct.pack(">h", error) + b"\x00"  # its error; no tagged fields
    body += b"\x00"
    return bytes(body)


class KafkaProxy:
    """Forwards 127.0.0.1:``port`` to the broker at 127.0.0.1:``upstream``."""

    def __init__(self, port: int, upstream: int) -> None:
        self.port, self.upstream = port, upstream
        self._lock = threading.Lock()
        self._armed: dict[bytes, int] = {}  # group id -> answers still to replace
        self._drops: dict[tuple[int, bytes], int] = {}  # (api key, name) -> answers to drop
        self.replaced: list[str] = []  # the groups whose answer was replaced, in order
        self.dropped = 0  # answers not passed on
        self._server = socket.create_server(("127.0.0.1", port))
        self._sockets: set[socket.socket] = {self._server}  # open ones, closed at the end
        self._closed = False
        threading.Thread(target=self._accept, name="kafka-proxy", daemon=True).start()

    def fail_offset_fetch(self, group: str, times: int = 1) -> None:
        """Answer the next ``times`` OffsetFetch requests of ``group`` with NOT_COORDINATOR."""
        with self._lock:
            self._armed[group.encode()] = times

    def drop_answers(self, api_key: int, name: str, times: int = 1) -> None:
        """Pass on no answer to the next ``times`` requests of ``api_key`` that name ``name``
        (a topic): the client waits for it until its own timeout."""
        with self._lock:
            self._drops[(api_key, name.encode())] = times

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:  # closed, or broken: no more connections either way
                return
            try:
                broker = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:  # the broker is not listening (yet): the client tries again
                self._close(client)
                continue
            with self._lock:
                self._sockets |= {client, broker}
            pending: Pending = {}
            threading.Thread(target=self._up, args=(client, broker, pending), daemon=True).start()
            threading.Thread(target=self._down, args=(broker, client, pending), daemon=True).start()

    def _up(self, client: socket.socket, broker: socket.socket, pending: Pending) -> None:
        for frame in _frames(client):
            api_key, version = struct.unpack(">hh", frame[:4])
            if api_key == OFFSET_FETCH and version >= GROUPS_FROM_VERSION:
                self._mark(frame, pending)
            self._mark_drop(api_key, frame, pending)
            try:
                broker.sendall(struct.pack(">i", len(frame)) + frame)
            except OSError:
                break
        self._close(client, broker)

    def _mark(self, frame: bytes, pending: Pending) -> None:
        group = _group(frame)
        with self._lock:
            if self._armed.get(group, 0) > 0:
                self._armed[group] -= 1
                pending[frame[4:8]] = group

    def _mark_drop(self, api_key: int, frame: bytes, pending: Pending) -> None:
        with self._lock:
            for (key, name), left in self._drops.items():
                if key == api_key and left > 0 and name in frame[8:]:
                    self._drops[(key, name)] -= 1
                    pending[frame[4:8]] = None
                    return

    def _down(self, broker: socket.socket, client: socket.socket, pending: Pending) -> None:
        for frame in _frames(broker):
            correlation = frame[:4]
            with self._lock:
                marked = correlation in pending
                group = pending.pop(correlation, None)
                if group is not None:
                    self.replaced.append(group.decode())
                elif marked:
                    self.dropped += 1
            if marked and group is None:
                continue
            if group is not None:
                frame = _failed_answer(correlation, group, NOT_COORDINATOR)
            try:
                client.sendall(struct.pack(">i", len(frame)) + frame)
            except OSError:
                break
        self._close(broker, client)

    def _close(self, *sockets: socket.socket) -> None:
        for sock in sockets:
            with suppress(OSError):
                sock.close()
            with self._lock:
                self._sockets.discard(sock)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            self._close(sock)


@contextmanager
def proxy(port: int, upstream: int) -> Iterator[KafkaProxy]:
    running = KafkaProxy(port, upstream)
    try:
        yield running
    finally:
        running.close()


@contextmanager
def proxied_broker(root: Path) -> Iterator[KafkaProxy]:
    """A broker of its own under ``root``, every client of which (its own included) reaches
    it through the proxy at 127.0.0.1:``port``; stopped by its pid at the end."""
    port = free_port()
    broker = LocalBroker(
        BrokerConfig(
            data_dir=root / "kafka",
            port=free_port(),
            controller_port=free_port(),
            overrides=(("advertised.listeners", f"PLAINTEXT://127.0.0.1:{port}"),),
        )
    )
    with proxy(port, broker.config.port) as running:
        broker.start()
        try:
            yield running
        finally:
            broker.stop()
