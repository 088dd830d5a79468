"""Issue 29, finding 2: hostile webhook receivers, each a real server on 127.0.0.1 (allowed by the test's
STYLEDROP_WEBHOOK_ALLOW; never another address).

A receiver sending one byte every few seconds held a delivery (and the only worker) for minutes: httpx's
timeout is per read. The whole answer was read into memory and a gzip answer unpacked: 1 MB of gzip raised the
worker's memory by 2.1 GB. Now one attempt has one wall-clock deadline (lookup, connection, request and the
answer's head), the answer's body is never read and nothing is decompressed (Accept-Encoding: identity).
Each test measures what the receiver managed to send before the delivery let go, and what the delivery
allocated (tracemalloc), not how long it took."""

from __future__ import annotations

import gzip
import socket
import threading
import tracemalloc

import pytest

from app.domain import webhooks
from app.infra.db import session_factory
from app.infra.migrate import upgrade
from app.security.accounts import get_or_create_user

from .conftest import make_settings

MB = 1024 * 1024
EVENT = '{"id": "e1", "type": "round.succeeded", "data": {"status": "succeeded"}}'


class Receiver:
    """A raw HTTP/1.1 server on 127.0.0.1: reads one request, then `answer(sock)` writes whatever it likes. `sent`
    counts the bytes the delivery took before it closed the connection; `done` is set when the answer ends."""

    def __init__(self, answer):
        self.answer, self.sent, self.request = answer, 0, b""
        self.done = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/hook"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        try:
            while b"\r\n\r\n" not in self.request:
                self.request += conn.recv(65536)
            head, _, body = self.request.partition(b"\r\n\r\n")
            length = int(next((line.split(b":", 1)[1] for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), b"0"))
            while len(body) < length:
                body += conn.recv(65536)
            self.answer(self, conn)
        except OSError:  # the delivery closed the connection: what it took is counted
            pass
        finally:
            conn.close()
            self.listener.close()
            self.done.set()

    def send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        self.sent += len(data)

    def header(self, name: bytes) -> bytes | None:
        for line in self.request.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None


def trickle(head: bytes, body_bytes: int = 0, interval: float = 0.5, limit: int = 80):
    """One byte every `interval` seconds (up to `limit`): of the head itself if `head` is empty (a status line
    that never ends), else of the body after it."""
    def answer(receiver: Receiver, conn: socket.socket) -> None:
        stop = threading.Event()
        if head:
            receiver.send(conn, head)
        data = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * limit if not head else b"z" * body_bytes
        for byte in data[:limit]:
            if stop.wait(interval):
                break
            receiver.send(conn, bytes([byte]))
    return answer


@pytest.fixture
def delivery(tmp_path):
    """deliver(url) -> the outcome, with a 2 s deadline and 127.0.0.1 allowed; raises DeliveryFailed."""
    settings = make_settings(tmp_path / "data", webhook_allow="127.0.0.1/32", webhook_timeout_seconds=2.0)
    upgrade(settings)
    with session_factory(settings)() as session:
        user_id = get_or_create_user(session, "hooked").id

    def deliver(url: str) -> str:
        with session_factory(settings)() as session:
            return webhooks.deliver(settings, session, user_id, url, EVENT)

    deliver.settings = settings
    return deliver


def test_a_receiver_that_trickles_its_status_line_is_cut_off_at_the_deadline(delivery):
    receiver = Receiver(trickle(b"", interval=0.5, limit=80))  # 80 bytes: 40 s if nobody lets go
    with pytest.raises(webhooks.DeliveryFailed, match="no answer within 2 s"):
        delivery(receiver.url)
    assert receiver.done.wait(120)
    assert receiver.sent < 20, receiver.sent  # ~4 bytes in 2 s; the per-read timeout took all 80


def test_a_receiver_that_trickles_its_body_is_not_waited_for(delivery):
    """The status and headers are the answer: a 2xx is delivered without reading a byte of the body."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 80\r\n\r\n"
    receiver = Receiver(trickle(head, body_bytes=80, interval=0.5))
    assert delivery(receiver.url) == "delivered"
    assert receiver.done.wait(120)
    assert receiver.sent < len(head) + 10, receiver.sent  # the head and a byte or two, not all 80 (40 s)


def _flood(total: int):
    chunk = b"\0" * MB  # made once, before any measuring

    def answer(receiver: Receiver, conn: socket.socket) -> None:
        receiver.send(conn, f"HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n\r\n".encode())
        while receiver.sent < total:
            receiver.send(conn, chunk)
    return answer


def _allocated(call) -> tuple[object, int]:
    """call()'s outcome and the peak of what Python allocated meanwhile (this process's, the receiver's included:
    it sends one prepared buffer)."""
    tracemalloc.start()
    try:
        outcome = call()
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_huge_answer_is_never_read(delivery):
    receiver = Receiver(_flood(120 * MB))
    outcome, peak = _allocated(lambda: delivery(receiver.url))
    assert outcome == "delivered"
    assert receiver.done.wait(120)
    assert receiver.sent < 32 * MB, receiver.sent  # socket buffers at most; the whole 120 MB was read
    assert peak < 8 * MB, peak


def test_a_gzip_bomb_is_never_unpacked(delivery):
    bomb = gzip.compress(b"\0" * (200 * MB), compresslevel=9)  # ~200 KB that unpack to 200 MB
    assert len(bomb) < MB

    def answer(receiver: Receiver, conn: socket.socket) -> None:
        receiver.send(conn, b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Type: application/json\r\n"
                            b"Content-Length: " + str(len(bomb)).encode() + b"\r\n\r\n")
        receiver.send(conn, bomb)

    receiver = Receiver(answer)
    outcome, peak = _allocated(lambda: delivery(receiver.url))
    assert outcome == "delivered"
    assert receiver.done.wait(120)
    assert receiver.header(b"accept-encoding") == b"identity"  # we ask for none ...
    assert peak < 8 * MB, peak  # ... and unpack none that comes anyway


def test_an_error_answer_is_a_retry_without_its_body(delivery):
    receiver = Receiver(lambda r, conn: (r.send(conn, b"HTTP/1.1 503 Busy\r\nContent-Length: 104857600\r\n\r\n"),
                                         _flood(100 * MB)(r, conn)))
    with pytest.raises(webhooks.DeliveryFailed, match="answered 503"):
        delivery(receiver.url)
    assert receiver.done.wait(120)
    assert receiver.sent < 32 * MB, receiver.sent


def test_a_host_that_resolves_slowly_is_refused_at_the_deadline(delivery, monkeypatch):
    """getaddrinfo takes no timeout, and the receiver's own DNS server may answer as slowly as it likes: the
    lookup is waited on until the deadline, at the request (422) and before each attempt (a retry)."""
    release = threading.Event()
    real = webhooks._resolve

    def slow(host: str, port: int):
        if host != "slow.hooks.test":
            return real(host, port)
        release.wait(300)
        return real("127.0.0.1", port)

    monkeypatch.setattr(webhooks, "_resolve", slow)
    settings = delivery.settings.model_copy(update={"webhook_allow": "slow.hooks.test, 127.0.0.1/32"})
    try:
        from app.errors import ApiError

        with pytest.raises(ApiError) as refused:
            webhooks.check_callback_url("http://slow.hooks.test:9/hook", settings)
        assert refused.value.status == 422 and "in time" in refused.value.detail
        with session_factory(settings)() as session, pytest.raises(webhooks.DeliveryFailed, match="looking up"):
            webhooks.deliver(settings, session, None, "http://slow.hooks.test:9/hook", EVENT)
    finally:
        release.set()
