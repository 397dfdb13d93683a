"""Does a replica say what the chain says? Reads every account a signer knows straight from the
Clearinghouse, at the block the signer stands on (by hash), and lists each difference in cash,
state hash or positions. The demo runs it after every step; operators can run it any time."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from offchain.chain.contracts import SystemClient


def signer_replica(url: str, timeout: float = 60.0) -> dict[str, Any]:
    with urllib.request.urlopen(url.rstrip("/") + "/v1/replica?detail=1", timeout=timeout) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def differences(client: SystemClient, replica: dict[str, Any]) -> list[str]:
    """Each account of `replica` (GET /v1/replica?detail=1) whose stored state differs, named
    with what differs; [] when the replica equals the chain at its block."""
    block_hash = replica.get("hash")
    if not block_hash:
        return [f"the replica at block {replica.get('block')} records no block hash"]
    if replica.get("diverged"):
        return [f"the replica marks {len(replica['diverged'])} accounts diverged: {replica['diverged'][:5]}"]
    rows: dict[str, dict[str, Any]] = replica["rows"]
    onchain = client.accounts_at(sorted(rows), block_hash)
    problems = []
    for account, row in sorted(rows.items()):
        chain = onchain[account]
        mine = (int(row["cash"]), row["state_hash"], [int(i) for i in row["order"]], [int(z) for z in row["positions"]])
        theirs = (chain.cash, "0x" + chain.state_hash.hex(), chain.order, [chain.positions[i] for i in chain.order])
        if mine != theirs:
            what = [name for name, a, b in zip(("cash", "state hash", "open list", "sizes"), mine, theirs) if a != b]
            problems.append(f"{account}: {', '.join(what)} differ (replica {mine}, chain {theirs})")
    return problems


def check_signers(client: SystemClient, urls: list[str], attempts: int = 3) -> list[str]:
    """The first signer's replica against the contract, the others against it by digest (at the
    same block; asked again when the chain moved between the answers). [] when all agree."""
    problems: list[str] = []
    for _ in range(attempts):
        replicas = [signer_replica(u) for u in urls]
        blocks = {r["block"] for r in replicas}
        if len(blocks) > 1:
            problems = [f"signers at different blocks {sorted(blocks)}"]
            continue
        problems = [f"{urls[0]}: {d}" for d in differences(client, replicas[0])]
        problems += [
            f"{u}: digest {r['digest']} differs from {urls[0]}'s {replicas[0]['digest']}"
            for u, r in zip(urls[1:], replicas[1:])
            if r["digest"] != replicas[0]["digest"]
        ]
        return problems
    return problems
