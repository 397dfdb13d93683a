"""Benchmark of the public endpoints under concurrent load (real processes on a local Anvil node:
3 signers, threshold 2, the gateway; 50 funded accounts with open positions).

    ./dpre bench http [--clients 1,16,64] [--seconds 10]

For margin, trade and liquidation attestations through the gateway (and trades never asked before,
"trade-new", which no cache can answer), at each number of concurrent
keep-alive clients: throughput, p50 / p99 / max latency of answered requests, refusals (503:
beyond the configured limits) and connection errors. The baseline in the same run is one client
that opens a new connection per request. The last column recalls the figures measured on the
previous HTTP layer (hand-written, one thread per connection), for margin attestations.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from offchain.risk.units import WAD  # noqa: E402
from offchain.sim.desk import trader_keys  # noqa: E402
from offchain.sim.harness import open_leveraged_longs, start_harness, stop_harness  # noqa: E402

# the previous HTTP layer, margin attestations through the gateway (same machine, same stack)
BEFORE = {("keep-alive", 1): "p50 84 ms", ("keep-alive", 16): "p99 856 ms", ("keep-alive", 64): "p99 5.1 s, 59 resets"}


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    refused: int = 0  # 503 / 429: the limits answering
    other: dict[int, int] = field(default_factory=dict)  # any other status
    errors: int = 0  # connection reset, refused, timed out
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: int, seconds: float) -> None:
        with self.lock:
            if status == 200:
                self.latencies.append(seconds)
            elif status in (429, 503):
                self.refused += 1
            else:
                self.other[status] = self.other.get(status, 0) + 1


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def load(url: str, path: str, bodies: Callable[[], dict[str, Any]], clients: int, seconds: float, keep: bool) -> Tally:
    target = urlparse(url)
    tally = Tally()
    stop = time.monotonic() + seconds

    def client() -> None:
        conn: http.client.HTTPConnection | None = None
        while time.monotonic() < stop:
            if conn is None:
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            data = json.dumps(bodies()).encode()
            start = time.perf_counter()
            try:
                conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                tally.add(r.status, time.perf_counter() - start)
                if not keep or r.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                with tally.lock:
                    tally.errors += 1
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return tally


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", default="1,16,64")
    ap.add_argument("--seconds", type=float, default=10.0, help="per endpoint and concurrency")
    ap.add_argument(
        "--endpoints",
        default="margin,trade,trade-new,liquidation",
        help="trade repeats 50 (maker, taker) pairs as the margin rows repeat 50 accounts; trade-new asks a new "
        "size each time, so every answer is computed",
    )
    args = ap.parse_args()
    levels = [int(c) for c in args.clients.split(",")]
    endpoints = [e for e in args.endpoints.split(",") if e]
    workdir = Path(tempfile.mkdtemp(prefix="dpre-bench-http-"))
    print(f"starting anvil, 3 signers (2-of-3), the gateway in {workdir} ...", flush=True)
    h = start_harness(workdir, keeper=False)
    try:
        gw = h.stack.procs["gateway"].url
        traders = trader_keys(500, 50)
        maker = trader_keys(501, 1)[0]
        print("opening 50 leveraged books ...", flush=True)
        open_leveraged_longs(h, traders, maker, contracts=10, deposit=8_000)
        perp = next(i for i, n in h.deployment.instruments.items() if n == "ETH-PERP")
        who = itertools.cycle([t.address for t in traders])
        nonces = itertools.count(1_000_000)
        deadline = int(h.desk.client.block_time("latest")) + 86_400
        bodies: dict[str, Callable[[], dict[str, Any]]] = {
            "margin": lambda: {"account": next(who)},
            "trade": lambda: {
                "order": {
                    "maker": maker.address,
                    "instrument_id": perp,
                    "size": str(-WAD),
                    "price": str(3000 * WAD),
                    "nonce": next(nonces),
                    "deadline": deadline,
                },
                "fill_amount": str(WAD),
                "taker": next(who),
            },
            "liquidation": lambda: {"accounts": [next(who)], "liquidator": maker.address},
        }
        # every request a trade no one asked for before (another size each time): never from the cache
        sizes = itertools.count(1)

        def distinct_trade() -> dict[str, Any]:
            body = bodies["trade"]()
            size = WAD + next(sizes)
            body["order"]["size"], body["fill_amount"] = str(-size), str(size)
            return body

        bodies["trade-new"] = distinct_trade
        rows = []
        for endpoint in endpoints:
            if endpoint == "liquidation":
                h.desk.set_market("ETH", 2_500.0, 0.8)  # every book below MM, none bankrupt
            path = f"/v1/attest/{endpoint.removesuffix('-new')}"
            runs = [("new connection", 1, False)] + [("keep-alive", c, True) for c in levels]
            for kind, clients, keep in runs:
                print(f"  {endpoint}: {clients} {kind} client(s) for {args.seconds:.0f} s ...", flush=True)
                t = load(gw, path, bodies[endpoint], clients, args.seconds, keep)
                rows.append((endpoint, kind, clients, t))
        print()
        print(
            f"{'endpoint':<12}{'clients':<20}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
            f"{'503/429':>9}{'other':>12}{'conn err':>10}   vs baseline   previous layer"
        )
        base: dict[str, float] = {}
        for endpoint, kind, clients, t in rows:
            n = len(t.latencies)
            p50 = pct(t.latencies, 0.5) * 1000
            if kind == "new connection":
                base[endpoint] = p50
            ratio = f"p50 x{p50 / base[endpoint]:.2f}" if kind != "new connection" else "(baseline)"
            other = ",".join(f"{s}:{c}" for s, c in sorted(t.other.items())) or "-"
            before = BEFORE.get((kind, clients), "") if endpoint == "margin" else ""
            print(
                f"{endpoint:<12}{f'{clients} {kind}':<20}{n / args.seconds:>8.1f}{p50:>9.1f}"
                f"{pct(t.latencies, 0.99) * 1000:>9.1f}{(max(t.latencies) if n else float('nan')) * 1000:>9.1f}"
                f"{t.refused:>9}{other:>12}{t.errors:>10}   {ratio:<13} {before}"
            )
    finally:
        stop_harness(h)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
