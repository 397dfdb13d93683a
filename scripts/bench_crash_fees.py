"""Benchmark: how many blocks the keeper needs from a crash to the last liquidation, in a calm fee
market and in a fee spike (base fee ×50 and every block bought by 1,000-gwei tips for
--spike-blocks blocks). Real processes on a local Anvil node; one block every half second, 12 s
apart in chain time. Prints figures from one run.

    ./dpre bench crash_fees [--accounts 20] [--spike-blocks 10] [--batch-size 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eth_account import Account  # noqa: E402

from offchain.sim.desk import trader_keys  # noqa: E402
from offchain.sim.chain_faults import ManualChain, set_market_urgently  # noqa: E402
from offchain.sim.harness import open_leveraged_longs, start_harness, stop_harness  # noqa: E402
from offchain.sim.harness import keeper_transactions, liquidation_blocks, wait_idle  # noqa: E402


def run(h, chain_url: str, traders: list, spike_blocks: int, timeout: float = 600.0) -> dict:
    chain = ManualChain(chain_url).start()
    try:
        chain.wait_blocks(3)
        wait_idle(h, chain)
        start = chain.head()
        if spike_blocks:
            chain.spike()
            chain.wait_blocks(1)
        crash = set_market_urgently(h.desk, "ETH", 2_500.0, 0.8)
        end = crash
        if spike_blocks:
            chain.wait_blocks(spike_blocks)
            end = chain.head()
            chain.calm()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            blocks = liquidation_blocks(h, start)
            if all(t.address in blocks for t in traders):
                break
            time.sleep(0.2)
        blocks = liquidation_blocks(h, start)
        done = [t for t in traders if t.address in blocks]
        last = max((min(blocks[t.address]) for t in done), default=chain.head())
        txs = keeper_transactions(h, start)
        me = Account.from_key(h.stack.keeper_key).address
        fees = sum(int(r["gasUsed"]) * int(r["effectiveGasPrice"]) for _, r, _ in txs) / 1e18
        return {
            "liquidated": len(done),
            "blocks": last - crash,
            "after_end": last - end,
            "txs": len(txs),
            "cancels": sum(1 for tx, _, _ in txs if tx["to"] == me),
            "reverted": sum(1 for _, r, _ in txs if r["status"] != 1),
            "fees_eth": fees,
        }
    finally:
        chain.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=20)
    ap.add_argument("--spike-blocks", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=10)
    args = ap.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="dpre-bench-fees-"))
    print(f"starting anvil, 3 signers (2-of-3), gateway, keeper in {workdir} ...", flush=True)
    h = start_harness(workdir, keeper=False, fund_seed_units=1_000_000)
    rows = []
    try:
        desk = h.desk
        desk.deposit(Account.from_key(h.stack.keeper_key), 10_000 * args.accounts)
        h.stack.keeper(["--batch-size", str(args.batch_size)]).start().wait_healthy()
        for label, seed, spike in (
            ("calm fee market", 700, 0),
            (f"fee spike: base fee x50, {args.spike_blocks} blocks outbid", 800, args.spike_blocks),
        ):
            desk.set_market("ETH", 3_000.0, 0.65)
            traders = trader_keys(seed, args.accounts)
            print(f"opening {args.accounts} leveraged longs at 3,000 ...", flush=True)
            open_leveraged_longs(h, traders, trader_keys(seed + 1, 1)[0], contracts=10, deposit=8_000)
            print(f"crash to 2,500 ({label}) ...", flush=True)
            rows.append((label, run(h, h.node.url, traders, spike)))
    finally:
        stop_harness(h)

    print()
    print(f"== keeper: crash (ETH 3,000 → 2,500, {args.accounts} accounts below MM) to the last liquidation ==")
    print(
        f"{'market':<44}{'blocks':>8}{'after spike':>13}{'liquidated':>12}{'txs':>6}{'cancels':>9}{'reverted':>10}{'gas paid (ETH)':>16}"
    )
    for label, r in rows:
        after = str(r["after_end"]) if "spike" in label else "-"
        print(
            f"{label:<44}{r['blocks']:>8}{after:>13}{r['liquidated']:>12}{r['txs']:>6}{r['cancels']:>9}{r['reverted']:>10}"
            f"{r['fees_eth']:>16.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
