"""The keeper liquidating a crash with Merkle proofs against a posted whole-book commitment, as
real processes on a real Anvil node: the first batch goes with signed attestations while the root
is posted, the next ones prove their victims against it (only the liquidator's own attestation is
signed per transaction), and every account is liquidated once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from offchain.sim.desk import trader_keys

from offchain.sim.harness import Harness, liquidations, open_leveraged_longs, start_harness, stop_harness
from offchain.sim.http_calls import wait_for

pytestmark = [pytest.mark.chain, pytest.mark.slow]


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    harness = start_harness(
        tmp_path_factory.mktemp("proofs"), keeper_extra=["--proofs", "--proofs-min", "1", "--batch-size", "5"]
    )
    try:
        yield harness
    finally:
        stop_harness(harness)


def test_a_crash_is_liquidated_with_proofs_against_one_posted_root(h: Harness) -> None:
    desk, client = h.desk, h.desk.client
    maker, *traders = trader_keys(700, 13)
    open_leveraged_longs(h, traders, maker, contracts=10, deposit=8_000)
    start = client.head()
    desk.set_market("ETH", 2_500.0, 0.8)  # every long below MM, none bankrupt
    wait_for(
        lambda: all(liquidations(h).get(t.address, 0) >= 1 for t in traders), 120, "every account below MM liquidated"
    )
    counts = liquidations(h)
    assert all(counts[t.address] == 1 for t in traders), counts
    posted = client.commitments.events.CommitmentPosted().get_logs(from_block=start)
    assert 1 <= len(posted) <= 2, posted
    # after the first batch, the victims were proven, not signed: their `sigs` are proofs
    txs = sorted({(e.block, e.tx) for e in client.logs(start, client.head()) if e.name == "Liquidated"})
    assert len(txs) >= 3, "13 accounts in batches of 5"
    registry_word = bytes(12) + bytes.fromhex(h.deployment.commitments[2:])
    roots = {bytes(e.args["root"]) for e in posted}
    kinds = []
    for _, tx in txs:
        _, args = client.engine.decode_function_input(client.w3.eth.get_transaction(tx)["input"])
        sigs = [bytes(r["sigs"] if isinstance(r, dict) else r[2]) for r in args["requests"]]
        proven = [len(x) % 65 != 0 for x in sigs]
        assert all(proven) or not any(proven), "a batch is all proofs or all signatures"
        if all(proven):
            assert all(x[:32] == registry_word and x[32:64] in roots for x in sigs)
        kinds.append("proofs" if all(proven) else "signed")
        assert len(bytes(args["liquidatorSigs"])) % 65 == 0  # the liquidator's own state: signed
    assert kinds[0] == "signed" and "proofs" in kinds, kinds
