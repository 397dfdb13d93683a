"""Benchmark of the replica's state store: saving one block's changes, a cold start, memory —
SQLite (written incrementally) against the whole-file JSON snapshot, in the same run.

    ./dpre bench state [--accounts 1000000] [--touched 500]

A synthetic book of --accounts accounts (1–8 positions each) is saved once; then one block
touches --touched accounts (and leaves its undo record), and that block is saved. A cold start
loads the store in a fresh process (its peak memory is that process's). No chain is needed.
"""

from __future__ import annotations

import argparse
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from offchain.chain.contracts import DecodedLog  # noqa: E402
from offchain.replica.state import AccountState, ChainState  # noqa: E402
from offchain.replica.store import open_store  # noqa: E402

KEY = "31337:0xbench"


def book(n: int, seed: int = 7) -> ChainState:
    rng = random.Random(seed)
    state = ChainState(block=1_000, deployment_key=KEY)
    for k in range(n):
        acct = AccountState(
            cash=rng.randint(-(10**22), 10**24), state_hash=rng.randbytes(32), net_deposits=rng.randint(0, 10**24)
        )
        for i in rng.sample(range(1, 41), rng.randint(1, 8)):
            acct.set_position(i, rng.randint(-(10**20), 10**20) or 1)
        state.accounts[f"0x{k:040x}"] = acct
    state.hashes[state.block] = "0x" + "11" * 32
    return state


def one_block(state: ChainState, touched: int, seed: int = 8) -> None:
    """A block whose events change `touched` accounts' cash (through apply: undo record included)."""
    rng = random.Random(seed)
    block = state.block + 1
    for k, address in enumerate(rng.sample(sorted(state.accounts), touched)):
        state.apply(
            DecodedLog(
                block,
                k,
                "clearinghouse",
                "CashUpdated",
                {"account": address, "cash": rng.randint(0, 10**24)},
                "0x01",
                "0x" + "22" * 32,
            )
        )
    state.block = block
    state.hashes[block] = "0x" + "22" * 32
    state._touched_blocks.add(block)


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cold_start(target: str) -> tuple[float, float]:
    """(seconds, peak GiB) to load the store in a fresh process (its own high-water mark: the
    rusage figure would include the parent's, inherited across fork)."""
    code = (
        "import resource, sys, time; sys.path.insert(0, %r)\n"
        "from offchain.replica.store import open_store\n"
        "t = time.perf_counter(); s = open_store(%r, writer=False).load(%r); t = time.perf_counter() - t\n"
        "assert s is not None and len(s.accounts) > 0\n"
        "hwm = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM'))\n"
        "print(t, hwm / 2**20)"
    ) % (str(ROOT), target, KEY)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--touched", type=int, default=500)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dpre-bench-state-"))
    print(f"building {args.accounts:,} accounts ...", flush=True)
    state = book(args.accounts)
    rows = []
    for label, target in (
        ("JSON file (whole rewrite)", str(work / "replica.json")),
        ("SQLite (incremental)", str(work / "replica.sqlite")),
    ):
        store = open_store(target)
        state._everything = True
        print(f"{label}: first save ...", flush=True)
        first = timed(lambda: store.save(state))
        one_block(state, args.touched)
        block = timed(lambda: store.save(state))
        print(f"{label}: cold start in a fresh process ...", flush=True)
        load, peak = cold_start(target)
        size = sum(p.stat().st_size for p in work.glob(Path(target).name + "*")) / 2**20
        rows.append((label, first, block, load, peak, size))
        store.close()
    base = rows[0]
    print()
    print(f"== replica state store: {args.accounts:,} accounts, one block touching {args.touched} of them ==")
    print(
        f"{'store':<28}{'first save s':>14}{'block save ms':>15}{'cold start s':>14}{'peak GiB':>10}{'MiB on disk':>13}"
    )
    for label, first, block, load, peak, size in rows:
        print(f"{label:<28}{first:>14.2f}{block * 1000:>15.1f}{load:>14.2f}{peak:>10.2f}{size:>13.0f}")
    sqlite = rows[1]
    print(
        f"\nsaving one block: {base[2] * 1000:,.0f} ms → {sqlite[2] * 1000:,.1f} ms ({base[2] / sqlite[2]:,.0f}x); "
        f"cold start {base[3]:.1f} s → {sqlite[3]:.1f} s; peak memory of a loaded replica {sqlite[4]:.2f} GiB"
    )
    print(
        f"(this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB peak, building the book)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
