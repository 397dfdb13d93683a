"""Benchmark of the services on a local Anvil node (real processes). Prints figures from one run.

    ./dpre bench services [--sizes 10,100,1000]

1. Attestation latency: request → signed, combined response, through the gateway (2-of-3
   signers) and from one signer directly, for margin and trade attestations.
2. Keeper reaction time: from the price-feed update that makes N accounts liquidatable to the
   last liquidation mined, for each N in --sizes; and the blocks it took. With --keeper
   signed,proofs both ways in the same run: one threshold-signed attestation per account
   (batches of 50 within 12M gas, the default) against proofs from one posted whole-book
   commitment (batches of up to 300 within 28M gas, a 30M-gas block).
3. With --finality 0,2,5: the same reaction for 20 accounts on a chain that mines a block every
   second, with signers and keeper acting on the state N blocks below the head (the latency a
   confirmation depth costs), against N = 0 in the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eth_account import Account  # noqa: E402

from offchain.risk.units import WAD  # noqa: E402
from offchain.sim.desk import trader_keys  # noqa: E402
from offchain.sim.harness import liquidations, start_harness, stop_harness  # noqa: E402


def post(url: str, body: dict) -> float:
    start = time.perf_counter()
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()
    return time.perf_counter() - start


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--latency-requests", type=int, default=200)
    ap.add_argument("--finality", default="", help="confirmation depths to compare, e.g. 0,2,5 (runs only that part)")
    ap.add_argument("--keeper", default="signed,proofs", help="keeper modes to compare: signed, proofs")
    args = ap.parse_args()
    if args.finality:
        return finality([int(n) for n in args.finality.split(",")])
    sizes = [int(s) for s in args.sizes.split(",")]
    modes = [m for m in args.keeper.split(",") if m]
    unknown = set(modes) - set(KEEPER_MODES)
    if unknown:
        ap.error(f"--keeper: {', '.join(sorted(unknown))} is not one of {', '.join(KEEPER_MODES)}")
    rows: list[tuple[str, float, float, float]] = []
    reaction: dict[str, list[tuple[int, float, int, int]]] = {}
    for i, mode in enumerate(modes):
        workdir = Path(tempfile.mkdtemp(prefix="dpre-bench-"))
        print(
            f"starting anvil (30M gas blocks), 3 signers (2-of-3), gateway, keeper ({mode}) in {workdir} ...",
            flush=True,
        )
        h = start_harness(workdir, fund_seed_units=1_000_000, keeper_extra=KEEPER_MODES[mode], gas_limit=30_000_000)
        try:
            if i == 0:
                rows = latency(h, args.latency_requests)
            reaction[mode] = crash(h, sizes)
        finally:
            stop_harness(h)

    print()
    print("== attestation latency (ms, request to signed response) ==")
    print(f"{'request':<38}{'median':>10}{'p95':>10}{'p99':>10}")
    for label, med, p95, p99 in rows:
        print(f"{label:<38}{med:>10.1f}{p95:>10.1f}{p99:>10.1f}")
    print()
    print("== keeper reaction: price move to the last liquidation mined ==")
    print(
        f"{'keeper':<10}{'accounts at risk':<20}{'seconds':>10}{'blocks':>10}{'liquidated':>12}{'per account (ms)':>18}"
        + ("{:>16}".format("vs " + modes[0]) if len(modes) > 1 else "")
    )
    for mode in modes:
        for k, (n, seconds, blocks, done) in enumerate(reaction[mode]):
            base = reaction[modes[0]][k][1]
            ratio = f"{base / seconds:>15.1f}x" if len(modes) > 1 and mode != modes[0] else ""
            print(f"{mode:<10}{n:<20}{seconds:>10.2f}{blocks:>10}{done:>12}{seconds / n * 1000:>18.1f}{ratio}")
    return 0


# the keeper's arguments per mode
KEEPER_MODES = {
    "signed": [],
    "proofs": ["--proofs", "--batch-size", "300", "--batch-gas", "28000000"],
}


def latency(h, requests: int) -> list[tuple[str, float, float, float]]:
    desk = h.desk
    perp = next(i for i, n in h.deployment.instruments.items() if n == "ETH-PERP")
    gw, s0 = h.stack.procs["gateway"].url, h.stack.procs["signer0"].url
    maker, taker = trader_keys(90, 2)
    desk.fund_gas([maker.address, taker.address])
    desk.deposit(maker, 100_000_000)
    desk.deposit(taker, 100_000)
    assert desk.fill(maker, taker, perp, -1, 3000.0).ok
    rows = []
    order = {
        "maker": maker.address,
        "instrument_id": perp,
        "size": str(-WAD),
        "price": str(3000 * WAD),
        "nonce": 1,
        "deadline": 2**40,
    }
    for label, url, body in (
        ("margin via gateway (2-of-3)", gw + "/v1/attest/margin", {"account": taker.address}),
        ("margin from one signer", s0 + "/v1/attest/margin", {"account": taker.address}),
        (
            "trade via gateway (2 attestations)",
            gw + "/v1/attest/trade",
            {"order": order, "fill_amount": str(WAD), "taker": taker.address},
        ),
    ):
        times = [post(url, body) for _ in range(requests)]
        rows.append((label, statistics.median(times) * 1000, pct(times, 0.95) * 1000, pct(times, 0.99) * 1000))
    return rows


def crash(h, sizes: list[int]) -> list[tuple[int, float, int, int]]:
    """For each size: open that many leveraged longs, drop the price 16%, time the keeper."""
    desk = h.desk
    perp = next(i for i, n in h.deployment.instruments.items() if n == "ETH-PERP")
    reaction = []
    price = 3000.0
    for n in sizes:
        traders = trader_keys(1000 + n, n)
        mm = trader_keys(2000 + n, 1)[0]
        desk.set_market("ETH", price, 0.65)
        print(f"opening {n} leveraged longs at {price:,.0f} ...", flush=True)
        desk.fund_gas([t.address for t in traders] + [mm.address])
        desk.deposit(mm, 100_000_000)
        # the keeper takes every slice: its own margin must grow with the population
        desk.deposit_for(Account.from_key(h.stack.keeper_key).address, 10_000 * n)
        for k, t in enumerate(traders):
            desk.deposit(t, 8_000 * price / 3000)
            assert desk.fill(mm, t, perp, -10, price).ok
            if (k + 1) % 100 == 0:
                print(f"  {k + 1}/{n}", flush=True)
        drop = price * 0.84
        start_block = desk.client.head()
        t0 = time.perf_counter()
        desk.set_market("ETH", drop, 0.8)
        deadline = time.monotonic() + 1800
        done = 0
        while time.monotonic() < deadline:
            counts = liquidations(h)
            done = sum(1 for t in traders if counts.get(t.address, 0) >= 1)
            if done == n:
                break
            time.sleep(0.2)
        seconds = time.perf_counter() - t0
        reaction.append((n, seconds, desk.client.head() - start_block, done))
        price = drop
    return reaction


def finality(depths: list[int], n: int = 20, block_time: float = 1.0) -> int:
    """Keeper reaction at each confirmation depth, on a chain mining every `block_time` s."""
    rows = []
    for depth in depths:
        workdir = Path(tempfile.mkdtemp(prefix=f"dpre-bench-finality-{depth}-"))
        print(f"confirmations {depth}: anvil mining every {block_time:g}s, 3 signers, gateway, keeper ...", flush=True)
        flag = ["--confirmations", str(depth)]
        h = start_harness(
            workdir, fund_seed_units=1_000_000, keeper_extra=flag, signer_extra={i: flag for i in range(3)}
        )
        try:
            desk = h.desk
            perp = next(i for i, name in h.deployment.instruments.items() if name == "ETH-PERP")
            traders, mm = trader_keys(3000, n), trader_keys(3100, 1)[0]
            desk.fund_gas([t.address for t in traders] + [mm.address])
            desk.deposit(mm, 100_000_000)
            for t in traders:
                desk.deposit(t, 8_000)
            for t in traders:
                # the signers answer for the state `depth` blocks down: each trade waits for the last
                desk.w3.provider.make_request("anvil_mine", [depth])
                assert desk.fill(mm, t, perp, -10, 3000.0).ok
            # books opened (one block per transaction): from now on a block every `block_time` s
            desk.w3.provider.make_request("evm_setIntervalMining", [int(block_time)])
            start_block = desk.client.head()
            t0 = time.perf_counter()
            desk.set_market("ETH", 2_520.0, 0.8)
            done = 0
            while time.perf_counter() - t0 < 600 and done < n:
                counts = liquidations(h)
                done = sum(1 for t in traders if counts.get(t.address, 0) >= 1)
                time.sleep(0.2)
            rows.append((depth, time.perf_counter() - t0, desk.client.head() - start_block, done))
        finally:
            stop_harness(h)
    base = rows[0]
    print()
    print(
        f"== finality: {n} accounts below MM, price move to the last liquidation mined, a block every {block_time:g}s =="
    )
    print(f"{'confirmations':<16}{'seconds':>10}{'blocks':>10}{'liquidated':>12}{'vs ' + str(base[0]):>10}")
    for depth, seconds, blocks, done in rows:
        print(f"{depth:<16}{seconds:>10.2f}{blocks:>10}{done:>12}{seconds / base[1]:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
