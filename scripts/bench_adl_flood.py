"""Benchmark: margin attestation latency of one signer while it is flooded with ADL requests.

    ./dpre bench adl_flood [--accounts 3000] [--flooders 8] [--requests 400]

A real signer process on a local Anvil deployment, resumed from a state file holding a
synthetic book of --accounts accounts (perpetuals and options on ETH and BTC, random sizes) and
a few accounts bankrupt beyond the insurance fund, whose ADL plans rank and value every
opposite-side holder. Prints margin attestation latency (p50, p99, max) without the flood and
while --flooders processes request ADL plans back to back, and the ADL answers' own figures.
Figures from one run, not assertions.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eth_account import Account  # noqa: E402
from eth_utils import keccak, to_checksum_address  # noqa: E402

from offchain.chain.anvil import AnvilNode, free_port  # noqa: E402
from offchain.chain.contracts import SystemClient  # noqa: E402
from offchain.replica.state import AccountState, ChainState  # noqa: E402
from offchain.risk.units import WAD  # noqa: E402
from offchain.sim.stack import Proc  # noqa: E402
from offchain.sim.harness import deploy_with_feeds  # noqa: E402


def post(url: str, body: dict) -> tuple[float, int]:
    data = json.dumps(body).encode()
    start = time.perf_counter()
    req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            r.read()
            status = r.status
    except urllib.error.HTTPError as err:
        err.read()
        status = err.code
    return time.perf_counter() - start, status


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def synthetic_book(client: SystemClient, n: int, bankrupt: int, seed: int) -> tuple[ChainState, list[str], list[str]]:
    """The deployment's replayed state plus n synthetic accounts and `bankrupt` accounts long
    ETH-PERP far beyond the fund (state hashes are placeholders: nothing is sent on-chain)."""
    key = ChainState.key_of(client.deployment.chain_id, client.deployment.clearinghouse)
    state = ChainState(block=client.deployment.deploy_block - 1, deployment_key=key)
    state.catch_up(client, client.head())
    ids = {inst.name: i for i, inst in state.instruments.items()}
    perp = ids["ETH-PERP"]
    rng = random.Random(seed)
    spots = {"ETH": 3000.0, "BTC": 90000.0}
    accounts = []
    for k in range(n):
        address = to_checksum_address(keccak(text=f"bench-adl-{seed}-{k}")[:20])
        acct = AccountState(state_hash=keccak(text=f"state-{k}"))
        legs = rng.sample(sorted(state.instruments), rng.randint(1, min(4, len(state.instruments))))
        if perp not in legs and rng.random() < 0.6:
            legs.append(perp)
        notional = 0.0
        for i in legs:
            inst = state.instruments[i]
            size = rng.choice([-1, 1]) * rng.uniform(0.1, 20.0) * (1 if inst.underlying == "ETH" else 0.03)
            acct.set_position(i, int(size * WAD))
            notional += abs(size) * spots[inst.underlying]
        deposit = notional * rng.uniform(0.3, 1.5) + 1_000
        acct.net_deposits = int(deposit * WAD)
        # perpetuals are bought out of cash: equity = cash + value starts near the deposit
        acct.cash = int((deposit - sum(acct.positions[i] / WAD * spots["ETH"] for i in legs if i == perp)) * WAD)
        state.accounts[address] = acct
        accounts.append(address)
    bankrupts = []
    for k in range(bankrupt):
        address = to_checksum_address(keccak(text=f"bench-adl-bankrupt-{seed}-{k}")[:20])
        acct = AccountState(state_hash=keccak(text=f"bankrupt-{k}"), net_deposits=10_000 * WAD)
        size = 200.0
        acct.set_position(perp, int(size * WAD))
        acct.cash = int((10_000 - size * 3000 * 1.2) * WAD)  # bought 20% above the market: deeply under water
        state.accounts[address] = acct
        bankrupts.append(address)
    state.block = client.head()
    return state, accounts, bankrupts


def flood(url: str, accounts: list[str], stop: "mp.synchronize.Event", out: "mp.Queue[list[float]]") -> None:
    times: list[float] = []
    k = 0
    while not stop.is_set():
        seconds, _ = post(url, {"account": accounts[k % len(accounts)]})
        times.append(seconds)
        k += 1
    out.put(times)


def measure_margin(url: str, accounts: list[str], n: int) -> list[float]:
    times = []
    for k in range(n):
        seconds, status = post(url, {"account": accounts[k % len(accounts)]})
        if status != 200:
            raise RuntimeError(f"margin attestation answered HTTP {status}")
        times.append(seconds)
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=3000)
    ap.add_argument("--bankrupt", type=int, default=3, help="accounts bankrupt beyond the fund (ADL targets)")
    ap.add_argument("--flooders", type=int, default=8, help="processes requesting ADL plans back to back")
    ap.add_argument("--requests", type=int, default=400, help="margin requests per measurement")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="dpre-bench-adl-"))
    print(f"starting anvil and deploying in {workdir} ...", flush=True)
    node = AnvilNode(port=0, log_path=workdir / "anvil.log").start()
    signer = None
    try:
        key = Account.create().key.hex()
        deployment, dep_path = deploy_with_feeds(node.url, workdir, [Account.from_key(key).address], 1)
        client = SystemClient(node.url, deployment)
        print(f"building a synthetic book of {args.accounts:,} accounts ...", flush=True)
        state, accounts, bankrupts = synthetic_book(client, args.accounts, args.bankrupt, args.seed)
        state_path = workdir / "signer-state.json"
        state.save(state_path)
        port = free_port()
        signer = Proc(
            "signer",
            [
                "oracle",
                "signer",
                "--rpc",
                node.url,
                "--deployment",
                str(dep_path),
                "--key-env",
                "BENCH_KEY",
                "--port",
                str(port),
                "--state",
                str(state_path),
                "--rate",
                "1000000",
            ],
            {"BENCH_KEY": key},
            workdir / "signer.log",
            url=f"http://127.0.0.1:{port}",
        ).start()
        signer.wait_healthy(120)
        margin_url, adl_url = signer.url + "/v1/attest/margin", signer.url + "/v1/attest/adl"
        rng = random.Random(args.seed)
        sample = rng.sample(accounts, min(len(accounts), args.requests))

        measure_margin(margin_url, sample[:20], 20)  # warm-up
        cold = []
        for b in bankrupts:
            seconds, status = post(adl_url, {"account": b})
            if status != 200:
                raise RuntimeError(f"ADL plan of {b} answered HTTP {status}: see {signer.log_path}")
            cold.append(seconds)
        idle = measure_margin(margin_url, sample, args.requests)
        adl_idle = [post(adl_url, {"account": bankrupts[k % len(bankrupts)]})[0] for k in range(100)]

        stop, out = mp.Event(), mp.Queue()
        targets = bankrupts + rng.sample(accounts, 5)  # plans, and cached refusals of solvent accounts
        workers = [
            mp.Process(
                target=flood, args=(adl_url, targets[k % len(targets) :] + targets[: k % len(targets)], stop, out)
            )
            for k in range(args.flooders)
        ]
        flood_start = time.perf_counter()
        for w in workers:
            w.start()
        time.sleep(1.0)
        flooded = measure_margin(margin_url, sample, args.requests)
        stop.set()
        window = time.perf_counter() - flood_start
        adl_times = [t for _ in workers for t in out.get(timeout=60)]
        for w in workers:
            w.join(timeout=30)
        with urllib.request.urlopen(signer.url + "/health", timeout=10) as r:
            health = json.loads(r.read())

        def row(label: str, times: list[float]) -> str:
            return (
                f"{label:<44}{statistics.median(times) * 1000:>9.1f}{pct(times, 0.99) * 1000:>9.1f}"
                f"{max(times) * 1000:>9.1f}{len(times):>9}"
            )

        print()
        print(
            f"book: {args.accounts:,} accounts, {args.bankrupt} bankrupt beyond the fund; one signer process "
            f"({os.cpu_count()} cores)"
        )
        print(f"ADL plan computed (cold, first request per account): {', '.join(f'{c * 1000:.0f} ms' for c in cold)}")
        print(
            f"ADL plans computed in total: {health['adl_plans']['computed']}, answered from cache: "
            f"{health['adl_plans']['cached_answers']}"
        )
        print()
        print(f"{'latency (ms)':<44}{'p50':>9}{'p99':>9}{'max':>9}{'n':>9}")
        print(row("margin attestation, no flood (baseline)", idle))
        print(row(f"margin attestation, {args.flooders} processes flooding ADL", flooded))
        print(row("ADL answer (cached plan), no flood", adl_idle))
        print(row("ADL answers during the flood", adl_times))
        print(f"ADL answers per second during the flood: {len(adl_times) / max(window, 1e-9):,.0f}")
    finally:
        if signer is not None:
            signer.stop()
        node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
