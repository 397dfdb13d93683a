"""The oracle and keeper as real processes on a real Anvil node: a price drop is liquidated,
kill -9 and restart loses and repeats nothing, an RPC outage is ridden out, the m-of-n quorum
holds with one signer down and refuses with two, and the API answers bad requests with 4xx."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from offchain.attest.messages import from_wire
from offchain.attest.state_hash import next_state_hash
from offchain.risk.units import WAD
from offchain.sim.desk import trader_keys

from offchain.sim.harness import Harness, liquidations, open_leveraged_longs, start_harness, stop_harness
from offchain.sim.http_calls import call, wait_for

pytestmark = [pytest.mark.chain, pytest.mark.slow]


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    harness = start_harness(tmp_path_factory.mktemp("services"))
    try:
        yield harness
    finally:
        stop_harness(harness)


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
        total = 0.0
        for line in r.read().decode().splitlines():
            if line.startswith(name) and not line.startswith("#"):
                total += float(line.rsplit(" ", 1)[1])
        return total


def perp_id(h: Harness) -> int:
    return next(i for i, n in h.deployment.instruments.items() if n == "ETH-PERP")


# ---------------------------------------------------------------------------------- API


def test_bad_requests_get_4xx_with_a_clear_message(h: Harness) -> None:
    gw = h.stack.procs["gateway"].url
    status, body = call(gw + "/v1/accounts/0x1234")
    assert status == 400 and "not an address" in body["error"]
    status, body = call(gw + "/v1/accounts/0x" + "ab" * 20)
    assert status == 404 and "never deposited" in body["error"]
    status, body = call(gw + "/v1/attest/margin", "POST", {"account": "nope"})
    assert status == 400 and body["error"].startswith("account:")
    status, body = call(gw + "/v1/attest/margin", "POST", raw=b"{not json")
    assert status == 400 and "not valid JSON" in body["error"]
    maker, taker = trader_keys(1, 2)
    order = {
        "maker": maker.address,
        "instrument_id": 999,
        "size": str(WAD),
        "price": str(WAD),
        "nonce": 1,
        "deadline": 2**40,
    }
    status, body = call(
        gw + "/v1/attest/trade", "POST", {"order": order, "fill_amount": str(WAD), "taker": taker.address}
    )
    assert status == 400 and "no instrument 999" in body["error"]
    order["instrument_id"] = perp_id(h)
    status, body = call(
        gw + "/v1/attest/trade", "POST", {"order": order, "fill_amount": str(2 * WAD), "taker": taker.address}
    )
    assert status == 400 and "fill_amount" in body["error"]
    status, body = call(
        gw + "/v1/attest/trade", "POST", {"order": order, "fill_amount": str(WAD), "taker": maker.address}
    )
    assert status == 400 and "own order" in body["error"]
    status, body = call(gw + "/v1/attest/liquidation", "POST", {"accounts": [], "liquidator": taker.address})
    assert status == 400
    status, body = call(gw + "/v1/nothing-here")
    assert status == 404
    status, spec = call(gw + "/openapi.json")
    assert status == 200 and "/v1/attest/trade" in spec["paths"]


def test_attestations_describe_the_chain_portfolio_only(h: Harness) -> None:
    desk = h.desk
    maker, taker = trader_keys(2, 2)
    desk.fund_gas([maker.address, taker.address])
    desk.deposit(maker, 100_000)
    desk.deposit(taker, 100_000)
    assert desk.fill(maker, taker, perp_id(h), -2.0, 3000.0).ok
    gw = h.stack.procs["gateway"].url
    # a caller cannot describe the portfolio: fields the request does not have are refused by name
    status, body = call(
        gw + "/v1/attest/margin", "POST", {"account": taker.address, "positions": {"1": "0"}, "value": "1"}
    )
    assert status == 400 and "positions: unknown field" in body["error"] and "value: unknown field" in body["error"]
    status, body = call(gw + "/v1/attest/margin", "POST", {"account": taker.address})
    assert status == 200  # and the chain's portfolio is attested
    att = from_wire(body["items"]["margin"])
    assert att.state_hash == bytes(desk.client.ch.functions.stateHashOf(taker.address).call())
    assert att.value > 5_000 * WAD  # two perps at ~3,000, not the value the caller sent
    assert len(body["items"]["margin"]["signers"]) >= 2
    # a trade attestation is for the exact post-trade state of each side
    order = {
        "maker": maker.address,
        "instrument_id": perp_id(h),
        "size": str(-WAD),
        "price": str(3000 * WAD),
        "nonce": 77,
        "deadline": 2**40,
    }
    status, body = call(
        gw + "/v1/attest/trade", "POST", {"order": order, "fill_amount": str(WAD), "taker": taker.address}
    )
    assert status == 200
    current = bytes(desk.client.ch.functions.stateHashOf(taker.address).call())
    size = desk.client.ch.functions.positionOf(taker.address, perp_id(h)).call()
    assert from_wire(body["items"]["taker"]).state_hash == next_state_hash(current, perp_id(h), size + WAD)


def test_quorum_survives_one_signer_down_and_refuses_with_two(h: Harness) -> None:
    gw = h.stack.procs["gateway"].url
    maker = trader_keys(2, 1)[0]
    s0, s1 = h.stack.procs["signer0"], h.stack.procs["signer1"]
    s0.stop()
    status, body = call(gw + "/v1/attest/margin", "POST", {"account": maker.address})
    assert status == 200 and len(body["items"]["margin"]["signers"]) == 2
    s1.stop()
    status, body = call(gw + "/v1/attest/margin", "POST", {"account": maker.address})
    assert status == 503
    assert "1 of 3 signers answered, 2 identical signatures are required" in body["error"]
    assert any("unreachable" in str(v) for v in body["signers"].values())
    assert set(body["signers"]) <= {"signer1", "signer2", "signer3"}
    assert "127.0.0.1" not in json.dumps(body), "signers are named by seat, their addresses stay private"
    time.sleep(1.1)  # past the gateway's one-second health cache
    status, body = call(gw + "/health", "GET")  # below the threshold the gateway is down, and says so
    assert status == 503 and body["signers_up"] == 1 and body["threshold"] == 2
    assert "127.0.0.1" not in json.dumps(body)
    s0.start().wait_healthy()
    time.sleep(1.1)
    status, body = call(gw + "/health", "GET")  # at the threshold, degraded but serving
    assert status == 200 and body["status"] == "degraded" and body["signers_up"] == 2
    s1.start().wait_healthy()
    status, body = call(gw + "/v1/attest/margin", "POST", {"account": maker.address})
    assert status == 200 and len(body["items"]["margin"]["signers"]) == 2  # the threshold, never more
    time.sleep(1.1)
    assert call(gw + "/health", "GET")[1]["signers_up"] == 3


# ---------------------------------------------------------------------------------- keeper


def test_price_drop_is_liquidated_within_bounded_blocks(h: Harness) -> None:
    desk = h.desk
    traders = trader_keys(10, 10)
    maker = trader_keys(11, 1)[0]
    open_leveraged_longs(h, traders, maker, contracts=10, deposit=8_000)
    before = desk.client.head()
    desk.set_market("ETH", 2_500.0, 0.8)  # −16.7%: every long is below MM, none bankrupt
    wait_for(lambda: all(liquidations(h).get(t.address, 0) >= 1 for t in traders), 90, "the keeper to liquidate all 10")
    blocks = desk.client.head() - before
    assert blocks <= 40, f"took {blocks} blocks"
    counts = liquidations(h)
    assert all(counts[t.address] == 1 for t in traders), counts
    assert metric(h.stack.procs["keeper"].url, "keeper_liquidations_total") >= 10


def test_kill9_mid_run_then_restart_neither_repeats_nor_misses(h: Harness) -> None:
    desk = h.desk
    traders = trader_keys(20, 10)
    maker = trader_keys(21, 1)[0]
    h.stack.procs["keeper"].stop()  # open the positions with no keeper watching
    desk.set_market("ETH", 2_500.0, 0.8)
    open_leveraged_longs_at(h, traders, maker, price=2_500.0)
    # batches of two: five liquidation transactions, so the kill lands between them
    keeper = h.stack.keeper(["--batch-size", "2"]).start()
    keeper.wait_healthy()
    desk.set_market("ETH", 2_100.0, 0.9)  # −16%
    wait_for(lambda: sum(liquidations(h).get(t.address, 0) for t in traders) >= 1, 90, "a first liquidation")
    keeper.kill9()
    keeper.start().wait_healthy()
    wait_for(
        lambda: all(liquidations(h).get(t.address, 0) >= 1 for t in traders), 120, "all 10 liquidated after restart"
    )
    time.sleep(3)  # a repeat would land in the next loops
    counts = liquidations(h)
    assert all(counts[t.address] == 1 for t in traders), counts


def open_leveraged_longs_at(h: Harness, traders: list[Any], maker: Any, price: float) -> None:
    desk = h.desk
    desk.fund_gas([t.address for t in traders] + [maker.address])
    desk.deposit(maker, 10_000_000)
    for t in traders:
        desk.deposit(t, 8_000 * price / 3000)
        result = desk.fill(maker, t, perp_id(h), -10, price)
        assert result.ok, result.reason


def test_rpc_outage_backs_off_and_recovers(h: Harness) -> None:
    desk = h.desk
    keeper_url = h.stack.procs["keeper"].url
    traders = trader_keys(30, 3)
    maker = trader_keys(31, 1)[0]
    desk.set_market("ETH", 2_100.0, 0.9)
    open_leveraged_longs_at(h, traders, maker, price=2_100.0)
    errors_before = metric(keeper_url, "keeper_rpc_failures")
    h.proxy.stop()  # the oracle signers and the keeper lose the node
    try:
        # the keeper may be inside a call to the gateway when the node goes: give it time to notice
        wait_for(
            lambda: metric(keeper_url, "keeper_rpc_failures") > errors_before,
            60,
            "the keeper noticed the outage and backs off",
        )
        assert h.stack.procs["keeper"].alive(), "and kept running"
        status, body = call(h.stack.procs["signer0"].url + "/health")
        assert status == 503 and "unreachable" in body["error"], "a signer's health says so at once"
        desk.set_market("ETH", 1_800.0, 1.0)  # the market moves while they are cut off
        time.sleep(2)
    finally:
        h.proxy.start()  # whatever failed above, the later tests get their node back
    wait_for(lambda: all(liquidations(h).get(t.address, 0) >= 1 for t in traders), 120, "liquidations after recovery")
    with urllib.request.urlopen(keeper_url + "/health", timeout=5) as r:
        health = json.loads(r.read())
    assert health["status"] == "ok"
    with urllib.request.urlopen(h.stack.procs["gateway"].url + "/health", timeout=5) as r:
        assert json.loads(r.read())["signers_up"] == 3


def test_implausible_or_stale_market_data_stops_attestations(h: Harness) -> None:
    desk = h.desk
    gw = h.stack.procs["gateway"].url
    btc_trader, eth_trader = trader_keys(40, 2)
    maker = trader_keys(41, 1)[0]
    desk.fund_gas([btc_trader.address, eth_trader.address, maker.address])
    for a in (btc_trader, eth_trader, maker):
        desk.deposit(a, 1_000_000)
    btc = next(i for i, n in h.deployment.instruments.items() if n == "BTC-PERP")
    desk.set_market("ETH", 1_800.0, 1.0)
    assert desk.fill(maker, btc_trader, btc, -0.1, 90_000.0).ok
    assert desk.fill(maker, eth_trader, perp_id(h), -1, 1_800.0).ok
    # BTC prints +80% in one update: refused until confirmed, ETH books unaffected
    desk.set_market("BTC", 162_000.0, 0.5)
    status, body = call(gw + "/v1/attest/margin", "POST", {"account": btc_trader.address})
    assert status == 503 and "BTC" in body["error"] and "moved 80%" in body["error"]
    status, _ = call(gw + "/v1/attest/margin", "POST", {"account": eth_trader.address})
    assert status == 200
    for _ in range(3):  # three fresh rounds at the new level: a real move, accepted
        desk.set_market("BTC", 162_000.0, 0.5)
        call(gw + "/v1/attest/margin", "POST", {"account": btc_trader.address})
    status, _ = call(gw + "/v1/attest/margin", "POST", {"account": btc_trader.address})
    assert status == 200
    # a feed that stops: an hour and more without an update
    desk.w3.provider.make_request("evm_increaseTime", [4_000])
    desk.w3.provider.make_request("evm_mine", [])
    status, body = call(gw + "/v1/attest/margin", "POST", {"account": eth_trader.address})
    assert status == 503 and "stale" in body["error"]
    desk.set_market("ETH", 1_800.0, 1.0)
    desk.set_market("BTC", 162_000.0, 0.5)
    status, _ = call(gw + "/v1/attest/margin", "POST", {"account": eth_trader.address})
    assert status == 200


def test_a_signer_whose_key_is_not_authorized_says_so(h: Harness) -> None:
    from eth_account import Account

    stack = h.stack
    stack.signer_keys.append(Account.create().key.hex())  # a key governance never added
    outsider = stack.signer(len(stack.signer_keys) - 1).start()
    try:

        def refused() -> bool:
            try:
                return call(outsider.url + "/health")[0] == 503
            except OSError:  # not listening yet
                return False

        wait_for(refused, 60, "the outsider's health")
        status, body = call(outsider.url + "/health")
        assert "not in the on-chain signer set" in body["error"] and body["authorized"] is False
        assert body["status"] == "unauthorized"
        log = (stack.workdir / "logs" / f"{outsider.name}.log").read_text()
        assert "not in the on-chain signer set" in log
    finally:
        outsider.stop()
        stack.procs.pop(outsider.name)
        stack.signer_keys.pop()


def test_replicas_never_diverged_from_the_chain(h: Harness) -> None:
    for i in range(3):
        with urllib.request.urlopen(h.stack.procs[f"signer{i}"].url + "/health", timeout=5) as r:
            health = json.loads(r.read())
        assert health["hash_mismatches"] == 0
        assert health["lag_blocks"] <= 5
