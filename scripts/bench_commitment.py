"""Benchmark of a whole-book snapshot commitment: what one signer does per snapshot. Prints
figures from one run.

    ./dpre bench commitment [--accounts 100000]

--accounts portfolios (1–8 positions each over ~500 instruments on two underlyings, the risk
engine benchmark's market) are priced in one pass (margin_numbers_batch), turned into one
MarginAttestation each, hashed into the StandardMerkleTree and the root signed; then every
account's proof is taken. Compared, in the same run, with signing one attestation per account
(what a crash costs without commitments), timed on a sample and scaled.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from eth_account import Account  # noqa: E402

from bench_risk_engine import NOW, build_instruments, build_market  # noqa: E402
from offchain.attest.builder import margin_numbers_batch  # noqa: E402
from offchain.attest.commitment import BookCommitment  # noqa: E402
from offchain.attest.eip712 import Domain  # noqa: E402
from offchain.attest.messages import MarginAttestation, SnapshotCommitment  # noqa: E402
from offchain.attest.signer import LocalSigner  # noqa: E402
from offchain.risk.params import MarginParams  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--sample", type=int, default=2_000, help="accounts signed one by one, for the comparison")
    args = ap.parse_args()
    rng = random.Random(11)
    table = build_instruments()
    registry = {i + 1: inst for i, inst in enumerate(table.instruments)}
    market, params = build_market(), MarginParams()
    print(f"building {args.accounts:,} portfolios ...", flush=True)
    ids = list(registry)
    portfolios = {
        f"0x{k:040x}": {
            i: rng.choice((-1, 1)) * rng.randint(1, 50) * 10**17 for i in rng.sample(ids, rng.randint(1, 8))
        }
        for k in range(args.accounts)
    }
    hashes = {a: rng.randbytes(32) for a in portfolios}
    signer = LocalSigner(Account.create().key)
    domain = Domain(31337, "0x" + "cc" * 20)
    deadline = int(NOW) + 60

    t0 = time.perf_counter()
    numbers = margin_numbers_batch(portfolios, registry, market, params)
    t1 = time.perf_counter()
    atts = {
        a: MarginAttestation(a, hashes[a], v, im, mm, int(NOW), deadline, params.version)
        for a, (v, im, mm) in numbers.items()
    }
    book = BookCommitment(atts, int(NOW), deadline, params.version, block=1)
    t2 = time.perf_counter()
    signer.sign(domain, SnapshotCommitment(book.root, int(NOW), deadline, params.version, len(atts)))
    t3 = time.perf_counter()
    for a in atts:
        book.proof(a)
    t4 = time.perf_counter()
    sample = list(atts.values())[: args.sample]
    s0 = time.perf_counter()
    for att in sample:
        signer.sign(domain, att)
    per_signature = (time.perf_counter() - s0) / len(sample)

    n = len(atts)
    total = t3 - t0
    print()
    print(f"== one signer's whole-book commitment: {n:,} accounts ({args.accounts - n:,} left out) ==")
    print(f"{'step':<44}{'seconds':>10}")
    print(f"{'price every account (one pass)':<44}{t1 - t0:>10.2f}")
    print(f"{'attestations, leaves and tree':<44}{t2 - t1:>10.2f}")
    print(f"{'sign the root':<44}{t3 - t2:>10.4f}")
    print(f"{'commitment built and signed':<44}{total:>10.2f}")
    print(f"{'every proof taken (served on request)':<44}{t4 - t3:>10.2f}")
    signed_all = (t1 - t0) + per_signature * n
    print(
        f"\none signature per account instead: {signed_all:,.1f} s for the same book "
        f"({per_signature * 1e3:.2f} ms a signature, {len(sample):,} timed) — {signed_all / total:,.1f}x the commitment"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
