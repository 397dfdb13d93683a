"""A signer that answers badly — undecodable, trickled, oversized, out of range — costs the
gateway one vote and at most one deadline, never an error or a stall: real sockets, the gateway
in process, two honest signers behind it."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from offchain.ops.web import HttpError
from offchain.oracle.server import Gateway

from .test_gateway_votes import DOMAIN, SIGNERS, A, B, answer, att

Behaviour = Callable[[socket.socket], None]


def _read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
    )
    while len(rest) < length:
        rest += conn.recv(65536)


def respond(body: bytes, extra: bytes = b"") -> Behaviour:
    def behave(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
            + extra
            + b"content-length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )

    return behave


def trickle(body: bytes) -> Behaviour:
    def behave(conn: socket.socket) -> None:
        payload = b"HTTP/1.1 200 OK\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        for i in range(len(payload)):
            conn.sendall(payload[i : i + 1])
            time.sleep(0.3)

    return behave


class RawSigner:
    """A signer's port answering every request with `behaviour`, one thread per connection."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            try:
                _read_request(conn)
                self.behaviour(conn)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()


def honest(signer: object) -> Behaviour:
    return respond(json.dumps(answer(signer, {"margin": att()})).encode())  # type: ignore[arg-type]


BAD: dict[str, Behaviour] = {
    "gzip that is not gzip": respond(b"\x00not gzip at all", b"content-encoding: gzip\r\n"),
    "an answer trickled a byte at a time": trickle(json.dumps(answer(SIGNERS[2], {"margin": att()})).encode()),
    "2,000 items": respond(json.dumps(answer(SIGNERS[2], {f"m{i}": att() for i in range(2000)})).encode()),
    "a block beyond uint64": respond(json.dumps(answer(SIGNERS[2], {"margin": att()}, block=2**64)).encode()),
    "a copy of A's answer": honest(A),
    "not JSON": respond(b"<html>oops</html>"),
}


@pytest.fixture
def honest_pair() -> Iterator[tuple[RawSigner, RawSigner]]:
    pair = (RawSigner(honest(A)), RawSigner(honest(B)))
    yield pair
    for s in pair:
        s.close()


@pytest.mark.parametrize("kind", list(BAD))
def test_a_faulty_signer_in_the_first_seat_costs_one_vote(honest_pair: tuple[RawSigner, RawSigner], kind: str) -> None:
    bad = RawSigner(BAD[kind])
    try:
        gateway = Gateway(
            [bad.url, honest_pair[0].url, honest_pair[1].url], 2, DOMAIN, [s.address for s in SIGNERS], 1.0
        )
        start = time.monotonic()
        result = gateway.attest("margin", {"account": "0x" + "11" * 20})
        took = time.monotonic() - start
        assert result["items"]["margin"]["signers"] == [A.address, B.address], result
        assert result["block"] == 10
        assert took < 4.0, f"{kind}: {took:.1f}s"  # one deadline (1 s) at most, and a second round
        # these test signers answer /health with no status: the gateway says so, it does not crash
        with pytest.raises(HttpError) as down:
            gateway.health()
        assert down.value.status == 503 and set(down.value.details["signers"]) == {"signer1", "signer2", "signer3"}
    finally:
        bad.close()
