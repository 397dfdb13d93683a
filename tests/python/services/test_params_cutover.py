"""A risk-model version cutover under load, with the real processes: three signers (2-of-3, one
of them without the new parameters), the gateway and the keeper on Anvil. An outsider executes
the scheduled version 2 in the very block a crash starts; liquidations, trades and withdrawals
carry on without a gap, and an attestation of version 1 signed just before stays usable."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from offchain.attest.messages import from_wire
from offchain.chain.deploy import OnchainRiskConfig, read_risk_config
from offchain.risk.params import MarginParams
from offchain.sim.desk import trader_keys

from offchain.sim.harness import Harness, liquidations, open_leveraged_longs, start_harness, stop_harness
from .test_services import call, perp_id, wait_for

pytestmark = [pytest.mark.chain, pytest.mark.slow]

V2 = MarginParams(version=2, im_factor=1.30)


def _same_block(h: Harness, sends: list[Any]) -> int:
    """Sends every (account, call) and mines them in one block; returns its number."""
    desk = h.desk
    w3 = desk.w3
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        hashes = [desk.send_async(account, fn, "cutover") for account, fn in sends]
        w3.provider.make_request("evm_mine", [])
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    receipts = [w3.eth.wait_for_transaction_receipt(x, timeout=30) for x in hashes]
    assert all(int(r["status"]) == 1 for r in receipts)
    blocks = {int(r["blockNumber"]) for r in receipts}
    assert len(blocks) == 1
    return blocks.pop()


def test_params_cutover_in_the_block_a_crash_starts(tmp_path: Path) -> None:
    v2_file = tmp_path / "params-v2.json"
    v2_file.write_text(json.dumps(V2.to_dict()))
    holds_v2 = ["--params", str(v2_file)]
    h = start_harness(tmp_path, signer_extra={0: holds_v2, 1: holds_v2}, timelock_delay=60)
    try:
        desk, ch = h.desk, h.desk.client.ch
        gw = h.stack.procs["gateway"].url
        perp = perp_id(h)
        traders = trader_keys(60, 6)
        maker = trader_keys(61, 1)[0]
        alice, bob, carol, outsider = trader_keys(62, 4)
        open_leveraged_longs(h, traders, maker, contracts=10, deposit=8_000)
        desk.fund_gas([alice.address, bob.address, carol.address, outsider.address])
        for who in (alice, bob, carol):
            desk.deposit(who, 200_000)
        assert desk.fill(bob, alice, perp, -1, 3000.0).ok
        assert desk.fill(bob, carol, perp, -1, 3000.0).ok

        # the owner schedules version 2 (same on-chain limits); the timelock passes
        config = OnchainRiskConfig(params_version=2).as_tuple()
        desk.send(desk.deployer, ch.functions.scheduleRiskConfig(config, V2.params_hash()), "schedule")
        desk.w3.provider.make_request("evm_increaseTime", [61])
        desk.w3.provider.make_request("evm_mine", [])
        # fresh readings, and carol's withdrawal attestation of version 1 signed just before the change
        desk.set_market("BTC", 90_000.0, 0.5)
        desk.set_market("ETH", 3_000.0, 0.65)
        status, body = call(gw + "/v1/attest/margin", "POST", {"account": carol.address})
        assert status == 200
        carol_att = from_wire(body["items"]["margin"])
        carol_sigs = bytes.fromhex(body["items"]["margin"]["signatures"][2:])
        assert carol_att.params_version == 1

        # one block: an outsider executes the change, and ETH falls 17% with its vol up
        price_feed, vol_feed = desk.feeds["ETH"]
        cutover = _same_block(
            h,
            [
                (outsider, ch.functions.executeRiskConfig()),
                (desk.deployer, price_feed.functions.setAnswer(2_500 * 10**8)),
                (desk.deployer, vol_feed.functions.setAnswer(80 * 10**6)),
            ],
        )
        assert read_risk_config(ch).params_version == 2
        assert ch.functions.acceptsParamsVersion(1).call(), "version 1 stays acceptable for a while"

        # the attestation of version 1 from before the change: still usable
        withdraw = ch.functions.withdraw(1_000 * 10**6, carol.address, carol_att.as_tuple(), carol_sigs)
        desk.send(carol, withdraw, "withdraw")
        # new attestations carry version 2; trades and withdrawals go on at once
        status, body = call(gw + "/v1/attest/margin", "POST", {"account": alice.address})
        assert status == 200 and from_wire(body["items"]["margin"]).params_version == 2
        assert len(body["items"]["margin"]["signers"]) >= 2
        result = desk.fill(bob, alice, perp, -1, 2_500.0)
        assert result.ok, result.reason
        result = desk.withdraw(alice, 1_000)
        assert result.ok, result.reason

        # the keeper liquidates every long now below MM within a few blocks of the crash
        wait_for(
            lambda: all(liquidations(h).get(t.address, 0) >= 1 for t in traders),
            120,
            "the keeper to liquidate the six longs",
        )
        first = min(e.block for e in desk.client.logs(cutover, desk.client.head()) if e.name == "Liquidated")
        assert first - cutover <= 12, f"first liquidation {first - cutover} blocks after the cutover"
        last = max(e.block for e in desk.client.logs(cutover, desk.client.head()) if e.name == "Liquidated")
        assert last - cutover <= 40, f"last liquidation {last - cutover} blocks after the cutover"

        # the signers say what they sign: the one without version 2 reports the mismatch
        for i, mismatch in ((0, False), (1, False), (2, True)):
            # a signer the gateway did not need lately follows the chain every 2 s on its own
            url = h.stack.procs[f"signer{i}"].url + "/health"
            wait_for(lambda: call(url)[1]["params"]["in_force"] == 2, 10, f"signer{i} to see the cutover")
            status, health = call(url)
            assert health["params"]["in_force"] == 2 and health["params"]["mismatch"] is mismatch, health["params"]
        status, health = call(h.stack.procs["signer2"].url + "/health")
        assert health["params"]["signing"] == 1 and "previous version 1" in health["params"]["reason"]
        time.sleep(1)
        assert h.stack.procs["keeper"].alive()
    finally:
        stop_harness(h)
