"""The oracle's ADL endpoint: plans only for accounts bankrupt beyond the insurance fund, queue
leaves that commit to each counterparty's state hash and attested value, fills in rank order
until the size is covered and ordered so the equity-capped haircut reaches spare room, plans
computed once and cached, and never the replica's lock held while a plan is computed."""

from __future__ import annotations

import threading
import time

import pytest

from offchain.attest.errors import AttestationError
from offchain.attest.merkle import adl_leaf, verify
from offchain.attest.messages import AdlFill, from_wire
from offchain.ops.web import status_of
from offchain.oracle.core import OracleError
from offchain.risk.instruments import Instrument
from offchain.risk.units import WAD

from .fakes import Book, StaticSource, address, market

PERP, BTC = "ETH-PERP", "BTC-PERP"


def crash_book(fund: float = 100.0, mm_cash: float = 230_000.0) -> tuple[Book, dict[str, str]]:
    """ETH fell from 3,000 to 2,250: `bankrupt` (20 long) is 600 under water."""
    book = Book([Instrument.perp("ETH"), Instrument.perp("BTC")])
    who = {k: address(k) for k in ("bankrupt", "mm1", "mm2", "long", "healthy")}
    book.account(who["bankrupt"], cash=14_400 - 60_000, positions={PERP: 20}, deposits=14_400)
    book.account(who["mm1"], cash=mm_cash, positions={PERP: -10}, deposits=200_000)
    book.account(who["mm2"], cash=mm_cash + 15_000, positions={PERP: -15}, deposits=200_000)
    book.account(who["long"], cash=20_000 - 15_000, positions={PERP: 5}, deposits=20_000)
    book.account(who["healthy"], cash=50_000, deposits=50_000)
    book.state.fund_balance = int(fund * WAD)
    return book, who


def test_plan_only_for_accounts_bankrupt_beyond_the_fund() -> None:
    book, who = crash_book(fund=100.0)
    oracle = book.oracle(StaticSource(market(eth=2250.0)))
    answer = oracle.attest_adl({"account": who["bankrupt"]})
    assert from_wire(answer["items"]["adl"]).account == who["bankrupt"]
    assert int(answer["extra"]["expected"]["deficit"]) == 600 * WAD

    # the fund can cover the deficit: liquidate it whole instead
    book.state.fund_balance = 1_000 * WAD
    with pytest.raises(OracleError) as refused:
        book.oracle(StaticSource(market(eth=2250.0))).attest_adl({"account": who["bankrupt"]})
    assert status_of(refused.value) == 409 and "covers the deficit" in str(refused.value)

    # not bankrupt at all (the price recovered a little): liquidate, never deleverage
    book.state.fund_balance = 0
    with pytest.raises(OracleError) as refused:
        book.oracle(StaticSource(market(eth=2300.0))).attest_adl({"account": who["bankrupt"]})
    assert status_of(refused.value) == 409 and "not bankrupt" in str(refused.value)

    # an account below MM but solvent, and one with no positions
    for account in (who["long"], who["healthy"]):
        with pytest.raises(OracleError) as refused:
            oracle.attest_adl({"account": account})
        assert status_of(refused.value) == 409


def test_leaves_commit_to_state_hash_and_attested_value_fills_in_rank_order() -> None:
    book, who = crash_book()
    oracle = book.oracle(StaticSource(market(eth=2250.0)))
    answer = oracle.attest_adl({"account": who["bankrupt"]})
    att = from_wire(answer["items"]["adl"])
    fills = [AdlFill.from_wire(f) for f in answer["extra"]["fills"]]
    perp = book.ids[PERP]
    assert att.instrument_ids == (perp,)
    assert [f.rank for f in fills] == list(range(len(fills))), "rank order from the top, no gaps"
    covered = 0
    for f in fills:
        counterparty = book.state.accounts[f.counterparty]
        assert f.state_hash == counterparty.state_hash
        margin = from_wire(oracle.attest_margin({"account": f.counterparty})["items"]["margin"])
        assert f.value == margin.value, "the leaf's value is the counterparty's margin attestation value"
        assert verify(list(f.proof), att.queue_roots[0], adl_leaf(perp, f.rank, f.counterparty, f.state_hash, f.value))
        covered += min(abs(counterparty.positions[perp]), 20 * WAD - covered)
    assert covered == 20 * WAD
    assert len(fills) == 2, "as many fills as the size needs, no more"
    assert {f.counterparty for f in fills} == {who["mm1"], who["mm2"]}
    expected = answer["extra"]["expected"]
    assert int(expected["uncovered"]) == 0
    haircut = int(expected["deficit"]) - int(expected["fund_contribution"])
    assert 0 <= int(expected["haircut"]) - haircut <= len(fills), "shares round up, by a wei each"


def test_equity_caps_order_the_fills_so_the_haircut_reaches_spare_room() -> None:
    """Two legs: the ETH counterparty has almost no equity, the BTC one plenty. What the ETH fill
    cannot carry moves to the fills after it, so it must come first."""
    book = Book([Instrument.perp("ETH"), Instrument.perp("BTC")])
    bankrupt, thin, rich = address("b2"), address("thin"), address("rich")
    # long 10 ETH (3,000 → 2,250) and long 1 BTC (90,000 → 70,000): 27,500 lost on 20,000
    book.account(bankrupt, cash=20_000 - 30_000 - 90_000, positions={PERP: 10, BTC: 1}, deposits=20_000)
    book.account(thin, cash=30_000 + 10, positions={PERP: -10}, deposits=10)  # equity ≈ 7,510 at 2,250
    book.account(rich, cash=90_000 + 500_000, positions={BTC: -1}, deposits=500_000)
    book.state.fund_balance = 0
    oracle = book.oracle(StaticSource(market(eth=2250.0, btc=70_000.0)))
    answer = oracle.attest_adl({"account": bankrupt})
    fills = [AdlFill.from_wire(f) for f in answer["extra"]["fills"]]
    assert [f.counterparty for f in fills] == [thin, rich]
    expected = answer["extra"]["expected"]
    assert int(expected["uncovered"]) == 0, expected
    assert 0 <= int(expected["haircut"]) - int(expected["deficit"]) <= len(fills), "shares round up, by a wei each"

    # the rich one turns poor (equity −500, room 0): its share moves on to the thin one, whose
    # 7,510 of equity still carry the whole 7,500, because the poor fill now goes first
    book.account(rich, cash=70_000 - 500)
    oracle = book.oracle(StaticSource(market(eth=2250.0, btc=70_000.0)))
    answer = oracle.attest_adl({"account": bankrupt})
    assert [AdlFill.from_wire(f).counterparty for f in answer["extra"]["fills"]] == [rich, thin]
    assert int(answer["extra"]["expected"]["uncovered"]) == 0

    # the queue's equity (1,000) cannot carry 7,500: the plan says what stays uncovered
    book.account(thin, cash=22_500 + 1_000)
    oracle = book.oracle(StaticSource(market(eth=2250.0, btc=70_000.0)))
    expected = oracle.attest_adl({"account": bankrupt})["extra"]["expected"]
    assert int(expected["uncovered"]) == 6_500 * WAD


def test_plans_are_computed_once_per_state_and_snapshot() -> None:
    book, who = crash_book()
    oracle = book.oracle(StaticSource(market(eth=2250.0)))
    calls = []
    original = oracle._plan_adl

    def counting(ctx, account):  # type: ignore[no-untyped-def]
        calls.append(account)
        time.sleep(0.05)
        return original(ctx, account)

    oracle._plan_adl = counting  # type: ignore[method-assign]
    threads = [threading.Thread(target=oracle.attest_adl, args=({"account": who["bankrupt"]},)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    oracle.attest_adl({"account": who["bankrupt"]})
    assert calls == [who["bankrupt"]], "one computation for nine requests"
    # a refusal is cached as well
    for _ in range(3):
        with pytest.raises(OracleError):
            oracle.attest_adl({"account": who["long"]})
    assert calls == [who["bankrupt"], who["long"]]
    # a new state of the book is a new plan
    book.set(who["mm1"], PERP, -1)
    oracle.attest_adl({"account": who["bankrupt"]})
    assert calls == [who["bankrupt"], who["long"], who["bankrupt"]]


def test_no_request_waits_for_a_plan_being_computed() -> None:
    book, who = crash_book()
    oracle = book.oracle(StaticSource(market(eth=2250.0)))
    started, release = threading.Event(), threading.Event()
    original = oracle._plan_adl

    def slow(ctx, account):  # type: ignore[no-untyped-def]
        started.set()
        assert release.wait(10)
        return original(ctx, account)

    oracle._plan_adl = slow  # type: ignore[method-assign]
    adl = threading.Thread(target=oracle.attest_adl, args=({"account": who["bankrupt"]},))
    adl.start()
    assert started.wait(10)
    t0 = time.perf_counter()
    oracle.attest_margin({"account": who["mm1"]})
    oracle.risk_accounts(1.2)
    assert time.perf_counter() - t0 < 2.0, "margin and risk answers do not wait for the plan"
    assert adl.is_alive()
    release.set()
    adl.join()


def test_queue_values_are_the_margin_attestation_values_on_random_books() -> None:
    """ADL leaves carry each counterparty's value from the batch computation over the queue; it
    must be the very integer its own margin attestation carries."""
    import random

    from offchain.attest.builder import margin_numbers, margin_numbers_batch

    now = 1_800_000_000
    expiries = (now + 7 * 86400, now + 30 * 86400)
    instruments = [Instrument.perp("ETH"), Instrument.perp("BTC")]
    for e in expiries:
        for k in (2500, 2800, 3000, 3300, 3600):
            instruments += [Instrument.option("ETH", e, k, True), Instrument.option("ETH", e, k, False)]
        instruments += [Instrument.option("BTC", e, 90000, True), Instrument.option("BTC", e, 80000, False)]
    registry = {i + 1: inst for i, inst in enumerate(instruments)}
    data = market(eth=3012.37, btc=90123.1, timestamp=now, expiries=expiries)
    rng = random.Random(5)
    from offchain.risk.params import MarginParams

    params = MarginParams()
    books = {}
    for a in range(300):
        ids = rng.sample(sorted(registry), rng.randint(1, 10))
        books[f"0x{a:040x}"] = {i: rng.randint(-50 * WAD, 50 * WAD) for i in ids}
    batch = margin_numbers_batch(books, registry, data, params)
    assert all(margin_numbers(p, registry, data, params) == batch[a] for a, p in books.items())
    # a leg the registry does not list: the single path refuses it, the batch leaves the account out
    odd = {"0xodd": {1: 5 * WAD, 999: -100 * WAD}}
    with pytest.raises(AttestationError):
        margin_numbers(odd["0xodd"], registry, data, params)
    assert margin_numbers_batch({**odd, **books}, registry, data, params).keys() == books.keys()


def test_backstop_plan_only_for_a_due_stall_report_of_the_current_state() -> None:
    """A solvent account below MM gets a plan only through the backstop (LiquidationEngine.
    _requireBackstopDue): a stall report of its current state, BACKSTOP_DELAY old, equity still
    below the reported MM. The plan closes it at the marks: no haircut, nothing from the fund."""
    from tests.python.oracle.fakes import NOW, FakeClient

    book, who = crash_book(fund=0.0)
    long = who["long"]  # 5 long: equity 16,250 at 2,250; the stall reports below name the MM it fell under
    client = FakeClient()
    oracle = book.oracle(StaticSource(market(eth=2250.0)), client=client)
    with pytest.raises(OracleError) as refused:
        oracle.attest_adl({"account": long})
    assert status_of(refused.value) == 409 and "no stall report" in str(refused.value)

    state_hash = book.state.accounts[long].state_hash
    client.engine.stall_reports[long] = (state_hash, NOW - 30, NOW - 30, 20_000 * WAD)
    with pytest.raises(OracleError) as refused:
        book.oracle(StaticSource(market(eth=2250.0)), client=client).attest_adl({"account": long})
    assert "confirmed" in str(refused.value), "not before BACKSTOP_DELAY"

    client.engine.stall_reports[long] = (b"\x01" * 32, NOW - 120, NOW - 10, 20_000 * WAD)
    with pytest.raises(OracleError) as refused:
        book.oracle(StaticSource(market(eth=2250.0)), client=client).attest_adl({"account": long})
    assert "no stall report" in str(refused.value), "a report of another state does not count"

    client.engine.stall_reports[long] = (state_hash, NOW - 120, NOW - 100, 20_000 * WAD)
    with pytest.raises(OracleError) as refused:
        book.oracle(StaticSource(market(eth=2250.0)), client=client).attest_adl({"account": long})
    assert "confirmed" in str(refused.value), "a confirmation before the delay passed does not count"

    client.engine.stall_reports[long] = (state_hash, NOW - 200, NOW - 100, 20_000 * WAD)
    with pytest.raises(OracleError) as refused:
        book.oracle(StaticSource(market(eth=2250.0)), client=client).attest_adl({"account": long})
    assert "confirmed" in str(refused.value), "nor one older than the delay"

    client.engine.stall_reports[long] = (state_hash, NOW - 120, NOW - 10, 20_000 * WAD)
    answer = book.oracle(StaticSource(market(eth=2250.0)), client=client).attest_adl({"account": long})
    expected = answer["extra"]["expected"]
    assert (expected["haircut"], expected["fund_contribution"], expected["uncovered"]) == ("0", "0", "0")
    assert answer["extra"]["fills"], "closed against the queue"

    client.engine.stall_reports[long] = (state_hash, NOW - 120, NOW - 10, 16_000 * WAD)
    with pytest.raises(OracleError) as refused:
        book.oracle(StaticSource(market(eth=2250.0)), client=client).attest_adl({"account": long})
    assert "no longer below" in str(refused.value)


def test_a_refusal_only_time_lifts_is_not_cached() -> None:
    """Asked before the backstop is due, the refusal must not be served once it is due (the plan's
    cache key — account, state, snapshot — need not move when the stall report is confirmed)."""
    from tests.python.oracle.fakes import NOW, FakeClient

    book, who = crash_book(fund=0.0)
    long = who["long"]
    client = FakeClient()
    state_hash = book.state.accounts[long].state_hash
    client.engine.stall_reports[long] = (state_hash, NOW - 70, NOW - 70, 20_000 * WAD)
    oracle = book.oracle(StaticSource(market(eth=2250.0)), client=client)
    with pytest.raises(OracleError) as refused:
        oracle.attest_adl({"account": long})
    assert "confirmed" in str(refused.value)
    # a later block confirms it (the same state and market snapshot: the same cache key)
    client.engine.stall_reports[long] = (state_hash, NOW - 70, NOW + 5, 20_000 * WAD)
    client.block, client.now = client.block + 1, NOW + 10
    answer = oracle.attest_adl({"account": long})
    assert answer["extra"]["fills"], "planned once due"
