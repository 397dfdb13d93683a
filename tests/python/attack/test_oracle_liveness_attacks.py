"""Attack PoCs against the oracle signers and gateway on a real local stack (Anvil, 3 signers,
threshold 2, gateway; no keeper). Loopback only; every loop is bounded.

1. Rate-budget starvation: the signers rate-limit per client IP, and every gateway request
   reaches them from the gateway's one IP. One client staying inside the gateway's own per-client
   limit uses up the whole signer budget of the gateway: honest clients get 429.
2. ADL refusal cache poisoning: `attest_adl` caches refusals (Memo) under a key without the
   block / block time, so a "backstop not due yet" refusal asked just before the due time is
   served after the due time too, until some unrelated event or a feed round changes the key.
3. Snapshot-time reversal: the snapshot time is the newest reading of the *usable* underlyings;
   when the underlying with the newest reading drops out (jump guard), the snapshot time falls
   back to an older reading, below the on-chain floor (latestSnapshotTime − snapshotTolerance,
   30 s) a heartbeat (anyone may post it) set: the gateway then signs margin attestations the
   contract rejects (SnapshotTooOld) for every account, including ones without that underlying.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from eth_account import Account
from web3.exceptions import ContractCustomError, ContractLogicError

from offchain.attest.messages import from_wire
from offchain.keeper.errors import error_message
from offchain.sim.desk import FEED_DECIMALS, trader_keys

from tests.python.services.harness import Harness, open_leveraged_longs, start_harness, stop_harness
from tests.python.services.httpcalls import call

pytestmark = [pytest.mark.chain, pytest.mark.slow]


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    workdir = tmp_path_factory.mktemp("attack-liveness")
    harness = start_harness(workdir, n_signers=3, threshold=2, keeper=False)
    try:
        yield harness
    finally:
        stop_harness(harness)


def gw(h: Harness) -> str:
    return h.stack.procs["gateway"].url


def post_from(source_ip: str, url: str, path: str, body: dict[str, Any], timeout: float = 30) -> tuple[int, dict[str, Any]]:
    """A JSON POST from a given loopback source address (127.0.0.0/8 is all loopback on Linux)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout, source_address=(source_ip, 0))
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"{}")
    finally:
        conn.close()


def refresh_signers(h: Harness) -> None:
    for name, proc in h.stack.procs.items():
        if name.startswith("signer"):
            call(proc.url + "/v1/risk/accounts?max_ratio=1.0", timeout=30)


def mine(h: Harness, seconds: int = 0) -> None:
    w3 = h.desk.w3
    if seconds:
        w3.provider.make_request("evm_increaseTime", [seconds])
    w3.provider.make_request("evm_mine", [])


def signed(item: dict[str, Any]) -> tuple[Any, bytes]:
    return from_wire(item), bytes.fromhex(item["signatures"][2:])


def revert_of(fn: Any, sender: str) -> str | None:
    try:
        fn.call({"from": sender})
    except (ContractCustomError, ContractLogicError) as err:
        return error_message(err)
    return None


# ------------------------------------------------------------------ 1. gateway capacity starvation


def _honest_latency(h: Harness, account: str, n: int) -> list[tuple[int, float]]:
    out = []
    for _ in range(n):
        t0 = time.monotonic()
        try:
            s, _ = post_from("127.0.0.3", gw(h), "/v1/attest/margin", {"account": account}, timeout=60)
        except OSError:
            s = 0
        out.append((s, time.monotonic() - t0))
        time.sleep(0.3)
    return out


def test_one_client_within_its_gateway_limit_starves_every_other_client(h: Harness) -> None:
    desk = h.desk
    honest_trader = trader_keys(900, 1)[0]
    desk.fund_gas([honest_trader.address])
    desk.deposit(honest_trader, 1_000)
    calm = _honest_latency(h, honest_trader.address, 5)
    assert all(s == 200 for s, _ in calm)

    # the attacker, from another source address, keeps many cheap requests (unknown accounts: a 404
    # from every signer) in flight. The gateway serves ~100 such requests/s (its fan-out pool has
    # 12 threads for 3 signers), less than its per-client limit (200/s), so the attacker is never
    # rate-limited: its requests queue in the shared FIFO pool in front of everyone else's.
    junk = {"account": "0x" + "11" * 20}
    attacker_statuses: list[int] = []
    stop_at = time.monotonic() + 12.0

    def attacker(_: int) -> None:
        while time.monotonic() < stop_at:
            try:
                s, _ = post_from("127.0.0.2", gw(h), "/v1/attest/margin", junk, timeout=60)
            except OSError:
                s = 0
            attacker_statuses.append(s)

    with ThreadPoolExecutor(max_workers=300) as pool:
        futures = [pool.submit(attacker, i) for i in range(299)]
        time.sleep(2.0)
        attacked = _honest_latency(h, honest_trader.address, 8)
        for f in futures:
            f.result()

    limited = attacker_statuses.count(429)
    calm_p50 = sorted(t for _, t in calm)[len(calm) // 2]
    attacked_p50 = sorted(t for _, t in attacked)[len(attacked) // 2]
    print(f"attacker: {len(attacker_statuses)} requests in 12 s, {limited} rate-limited; honest latency calm "
          f"p50 {calm_p50:.3f}s, under attack p50 {attacked_p50:.3f}s, {attacked}")
    assert limited == 0  # the attacker never exceeded its own per-client limit
    assert attacked_p50 > 20 * calm_p50 and attacked_p50 > 1.0
    time.sleep(3.0)


# ------------------------------------------------------------------ 2. ADL refusal cache poisoning


def test_a_backstop_refusal_asked_early_is_served_after_the_backstop_is_due(h: Harness) -> None:
    desk, engine = h.desk, h.desk.client.engine
    (x,) = trader_keys(910, 1)
    maker = trader_keys(911, 1)[0]
    open_leveraged_longs(h, [x], maker, contracts=10, deposit=8_000)
    desk.set_market("ETH", 2_500.0, 0.8)
    desk.set_market("BTC", 90_000.0, 0.5)
    refresh_signers(h)
    status, resp = call(gw(h) + "/v1/attest/margin", "POST", {"account": x.address})
    assert status == 200, resp
    att, sigs = signed(resp["items"]["margin"])
    equity = desk.client.ch.functions.cashOf(x.address).call() + att.value
    assert equity < att.maintenance_margin, "the account must be below MM"

    # anyone reports the stall (a third party, with the oracle's own attestation)
    reporter = Account.create()
    desk.fund_gas([reporter.address])
    desk.send(reporter, engine.functions.reportStall(x.address, att.as_tuple(), sigs), "reportStall")
    _, since, _ = engine.functions.stalls(x.address).call()
    due = int(since) + int(engine.functions.BACKSTOP_DELAY().call())

    # the attacker asks for the backstop plan just before it is due: a 409, cached by every signer
    status, body = call(gw(h) + "/v1/attest/adl", "POST", {"account": x.address})
    assert status == 409 and "due at" in body["error"], body

    # the backstop becomes due; blocks pass, nothing else happens on-chain
    mine(h, due - desk.now() + 5)
    mine(h)
    assert desk.now() >= due
    head = desk.client.head()
    status, body = call(gw(h) + "/v1/attest/adl", "POST", {"account": x.address, "min_block": head})
    print("after the due time:", status, body.get("error"))
    assert status == 409 and "due at" in body["error"], body  # stale refusal, block time of the past

    # control: an unrelated event (a 1-unit deposit to some other account) changes the cache key,
    # and the very same request now gets the plan
    other = trader_keys(912, 1)[0]
    desk.deposit_for(other.address, 1)
    status, body = call(gw(h) + "/v1/attest/adl", "POST", {"account": x.address, "min_block": desk.client.head()})
    print("after an unrelated event:", status, body.get("error", "plan"))
    assert status == 200, body


# ------------------------------------------------------------------ 3. snapshot-time reversal


def test_a_dropped_underlying_pulls_the_snapshot_time_below_the_posted_floor(h: Harness) -> None:
    desk, ch = h.desk, h.desk.client.ch
    trader, maker = trader_keys(920, 2)
    desk.fund_gas([trader.address, maker.address])
    desk.deposit(trader, 10_000)
    desk.deposit(maker, 1_000_000)
    perp = next(i for i, n in h.deployment.instruments.items() if n == "ETH-PERP")
    assert desk.fill(maker, trader, perp, -1.0, 3000.0).ok  # ETH only, healthy
    mine(h, 5)

    # ETH is read at t0, BTC 120 s later (both fine, no jump)
    desk.set_market("ETH", 2_500.0, 0.8)
    refresh_signers(h)
    mine(h, 120)
    desk.set_market("BTC", 90_000.0, 0.5)
    refresh_signers(h)

    # anyone posts the heartbeat: the floor becomes BTC's reading time
    status, resp = call(gw(h) + "/v1/attest/heartbeat", "POST", {})
    assert status == 200, resp
    hb, sigs = signed(resp["items"]["heartbeat"])
    poster = Account.create()
    desk.fund_gas([poster.address])
    desk.send(poster, ch.functions.postSnapshot(hb.as_tuple(), sigs), "postSnapshot")
    floor = int(ch.functions.latestSnapshotTime().call())
    assert floor == hb.snapshot_time

    # BTC prints a jump: the guard makes BTC unavailable until three rounds confirm it
    mine(h, 5)
    desk.w3.provider.make_request("evm_mine", [])
    price_feed, _ = desk.feeds["BTC"]
    desk.send(desk.deployer, price_feed.functions.setAnswer(int(135_000 * 10**FEED_DECIMALS)), "feed")
    refresh_signers(h)

    # the gateway still signs an ETH-only account's attestation, at ETH's older reading time ...
    status, resp = call(gw(h) + "/v1/attest/margin", "POST", {"account": trader.address})
    assert status == 200, resp
    att, sigs = signed(resp["items"]["margin"])
    print(f"floor {floor}, tolerance 30, attested snapshotTime {att.snapshot_time}")
    assert att.snapshot_time < floor - 30
    # ... which the contract refuses: no withdrawal, no liquidation, no trade while BTC is guarded
    amount = 10**h.deployment.collateral_decimals
    reason = revert_of(ch.functions.withdraw(amount, trader.address, att.as_tuple(), sigs), trader.address)
    print("withdraw with the gateway's attestation:", reason)
    # SnapshotTooOld(uint64 snapshotTime, uint256 oldestAccepted) = 0xb1507361 (error_message does not
    # decode the Clearinghouse's errors when called on the Clearinghouse: raw data)
    from eth_utils import keccak
    selector = "0x" + keccak(text="SnapshotTooOld(uint64,uint256)")[:4].hex()
    assert reason is not None and (reason.startswith(selector) or "SnapshotTooOld" in reason), reason
