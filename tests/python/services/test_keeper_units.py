"""The keeper's decision logic without a chain: send-error classification for every exception
class a web3 call raises, custom errors decoded by name, EIP-1559 fees from eth_feeHistory with
caps and replacements, retry backoff in blocks, and the nonce-keyed journal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from eth_abi import encode
from eth_utils import keccak
from web3.exceptions import ContractCustomError, ContractLogicError, Web3RPCError

from offchain.keeper.errors import ErrorDecoder, SendError, classify
from offchain.keeper.fees import (
    GWEI,
    FeePolicy,
    FeeQuote,
    Fees,
    cap_for_value,
    price,
    quote_from_history,
    replacement,
    underpriced,
)
from offchain.keeper.journal import Journal
from offchain.keeper.tracker import RetryTracker

# ---------------------------------------------------------------------------------- send errors


def rpc_error(message: str, code: int = -32000) -> Web3RPCError:
    return Web3RPCError(
        str({"code": code, "message": message}), rpc_response={"error": {"code": code, "message": message}}
    )


@pytest.mark.parametrize(
    ("err", "kind"),
    [
        # anvil 1.7.1, verbatim
        (rpc_error("nonce too low", -32003), SendError.NONCE_TOO_LOW),
        (rpc_error("max fee per gas less than block base fee", -32003), SendError.FEE_BELOW_BASE_FEE),
        (rpc_error("replacement transaction underpriced", -32003), SendError.REPLACEMENT_UNDERPRICED),
        (rpc_error("transaction already imported", -32003), SendError.ALREADY_KNOWN),
        # geth
        (rpc_error("nonce too high"), SendError.NONCE_TOO_HIGH),
        (rpc_error("already known"), SendError.ALREADY_KNOWN),
        (rpc_error("transaction underpriced: tip needed 1000000000, tip permitted 1"), SendError.UNDERPRICED),
        (
            rpc_error("max fee per gas less than block base fee: address 0xabc, maxFeePerGas: 1 baseFee: 7"),
            SendError.FEE_BELOW_BASE_FEE,
        ),
        (rpc_error("insufficient funds for gas * price + value: balance 0"), SendError.INSUFFICIENT_FUNDS),
        (rpc_error("intrinsic gas too low"), SendError.GAS),
        (rpc_error("exceeds block gas limit"), SendError.GAS),
        # erigon / nethermind / hosted providers
        (rpc_error("fee cap less than block base fee"), SendError.FEE_BELOW_BASE_FEE),
        (rpc_error("FeeTooLow, MaxFeePerGas too low"), SendError.FEE_BELOW_BASE_FEE),
        (rpc_error("OldNonce, Current nonce: 5, nonce of rejected tx: 3"), SendError.NONCE_TOO_LOW),
        (rpc_error("AlreadyKnown"), SendError.ALREADY_KNOWN),
        (rpc_error("nonce has already been used"), SendError.NONCE_TOO_LOW),
        (rpc_error("execution reverted: 0x4e487b71"), SendError.REVERT),
        (rpc_error("backend is overloaded, try again"), SendError.RPC),
        # the same message, other exception classes
        (ValueError({"code": -32000, "message": "nonce too low"}), SendError.NONCE_TOO_LOW),
        (
            ValueError({"code": -32000, "message": "replacement transaction underpriced"}),
            SendError.REPLACEMENT_UNDERPRICED,
        ),
        (RuntimeError("already known"), SendError.ALREADY_KNOWN),
        # no answer at all: the transaction may or may not have arrived
        (requests.exceptions.ConnectionError("Connection refused"), SendError.CONNECTION),
        (requests.exceptions.ReadTimeout("read timed out"), SendError.CONNECTION),
        (TimeoutError("timed out"), SendError.CONNECTION),
        (ConnectionResetError("reset by peer"), SendError.CONNECTION),
        (requests.exceptions.HTTPError("502 Server Error: Bad Gateway"), SendError.CONNECTION),
    ],
)
def test_every_send_error_is_classified_whatever_its_class(err: Exception, kind: SendError) -> None:
    assert classify(err).kind is kind


def test_only_ambiguous_or_nonce_errors_ask_for_a_nonce_resync() -> None:
    assert SendError.NONCE_TOO_LOW.resync and SendError.NONCE_TOO_HIGH.resync
    assert SendError.CONNECTION.resync and SendError.RPC.resync
    assert not SendError.ALREADY_KNOWN.resync and not SendError.FEE_BELOW_BASE_FEE.resync


# ---------------------------------------------------------------------------------- revert decoding

ABI = [
    {
        "type": "error",
        "name": "LiquidatorBelowInitialMargin",
        "inputs": [{"name": "equity", "type": "int256"}, {"name": "initialMargin", "type": "uint256"}],
    },
    {
        "type": "error",
        "name": "PayersNotSettled",
        "inputs": [{"name": "instrumentId", "type": "uint256"}, {"name": "shortOpenInterest", "type": "uint256"}],
    },
    {"type": "error", "name": "NothingLiquidated", "inputs": []},
    {
        "type": "error",
        "name": "WrongPortfolioState",
        "inputs": [{"name": "expected", "type": "bytes32"}, {"name": "attested", "type": "bytes32"}],
    },
    {"type": "function", "name": "liquidate", "inputs": [], "outputs": []},
]


def selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def test_custom_errors_are_decoded_by_name_with_their_arguments() -> None:
    d = ErrorDecoder([ABI])
    data = selector("LiquidatorBelowInitialMargin(int256,uint256)") + encode(["int256", "uint256"], [-5, 40])
    assert d.decode(data) == "LiquidatorBelowInitialMargin(equity=-5, initialMargin=40)"
    assert d.decode("0x" + data.hex()) == "LiquidatorBelowInitialMargin(equity=-5, initialMargin=40)"
    assert d.name("0x" + selector("NothingLiquidated()").hex()) == "NothingLiquidated"
    moved = selector("WrongPortfolioState(bytes32,bytes32)") + encode(
        ["bytes32", "bytes32"], [b"\x01" * 32, b"\x02" * 32]
    )
    assert d.decode(moved) == f"WrongPortfolioState(expected=0x{'01' * 32}, attested=0x{'02' * 32})"
    assert d.decode(selector("Error(string)") + encode(["string"], ["paused"])) == "Error('paused')"
    assert (
        d.decode(selector("Panic(uint256)") + encode(["uint256"], [0x11]))
        == "Panic(0x11: arithmetic overflow or underflow)"
    )
    assert d.decode("0xdeadbeef") == "unknown error 0xdeadbeef"
    assert d.decode(None) is None and d.decode("0x") is None


def test_web3_revert_exceptions_are_described_by_name() -> None:
    d = ErrorDecoder([ABI])
    data = "0x" + (selector("PayersNotSettled(uint256,uint256)") + encode(["uint256", "uint256"], [3, 10**18])).hex()
    assert (
        d.describe(ContractCustomError(data, data=data))
        == f"PayersNotSettled(instrumentId=3, shortOpenInterest={10**18})"
    )
    assert d.describe(ContractLogicError("execution reverted: paused", data=None)) == "execution reverted: paused"


def test_the_contracts_own_errors_are_all_decodable() -> None:
    from offchain.chain.contracts import load_abi

    d = ErrorDecoder([load_abi("Clearinghouse"), load_abi("LiquidationEngine"), load_abi("InsuranceFund")])
    names = {name for name, _, _ in d.errors.values()}
    assert {
        "LiquidatorBelowInitialMargin",
        "PayersNotSettled",
        "NothingLiquidated",
        "AttestationExpired",
        "SnapshotTooOld",
        "StillBankrupt",
        "NotFlagged",
    } <= names
    data = selector("AttestationExpired(uint64)") + encode(["uint64"], [1234])
    assert d.decode(data) == "AttestationExpired(deadline=1234)"


# ---------------------------------------------------------------------------------- fees

HISTORY = {
    "oldestBlock": 10,
    "baseFeePerGas": [10 * GWEI, 11 * GWEI, 12 * GWEI, 50 * GWEI],  # last = the next block's
    "gasUsedRatio": [0.95, 0.0, 0.97],
    "reward": [[2 * GWEI], [0], [4 * GWEI]],
}


def history(ratios: list[float], tips: list[int]) -> dict:
    return {"baseFeePerGas": [GWEI] * (len(ratios) + 1), "gasUsedRatio": ratios, "reward": [[t] for t in tips]}


def test_quote_uses_the_next_blocks_base_fee_and_the_tips_of_full_blocks() -> None:
    q = quote_from_history(HISTORY, FeePolicy(min_tip=GWEI // 10))
    assert q.next_base == 50 * GWEI  # not the latest block's 12 gwei: that tx would be refused
    assert q.tip == 2 * GWEI  # median of 2, the empty block's 0.1 (anyone got in) and 4
    policy = FeePolicy(min_tip=GWEI // 10)
    # one generous payer in a quiet block sets no price
    quiet = history([0.05] * 9 + [0.1], [GWEI // 10] * 9 + [2_000 * GWEI])
    assert quote_from_history(quiet, policy).tip == GWEI // 10
    # full blocks bought at 1,000 gwei: from the spike's second block on, the quote follows
    spike = history([0.1] * 8 + [0.95, 0.95], [GWEI] * 8 + [1_000 * GWEI] * 2)
    assert quote_from_history(spike, policy).tip == 1_000 * GWEI
    one_full = history([0.1] * 9 + [0.95], [GWEI] * 9 + [1_000 * GWEI])
    assert quote_from_history(one_full, policy).tip == GWEI // 10  # one full block is no spike yet
    # the spike is over as soon as a block has room again: no 1,000-gwei tip in a half-empty block
    over = history([0.95] * 9 + [0.3], [1_000 * GWEI] * 9 + [GWEI])
    assert quote_from_history(over, policy).tip == GWEI // 10
    empty = {"baseFeePerGas": [GWEI, GWEI], "gasUsedRatio": [0.0], "reward": [[0]]}
    assert quote_from_history(empty, policy).tip == GWEI // 10


def test_price_leaves_room_for_rising_base_fees_and_never_exceeds_what_the_action_is_worth() -> None:
    policy = FeePolicy(max_fee=500 * GWEI)
    q = FeeQuote(next_base=50 * GWEI, tip=3 * GWEI)
    assert price(q, policy) == Fees(103 * GWEI, 3 * GWEI)
    # a liquidation earning 0.006 ETH of bonus over 100k gas may pay at most 60 gwei per gas
    cap = cap_for_value(6 * 10**15, 100_000)
    assert cap == 60 * GWEI
    assert price(q, policy, cap) == Fees(60 * GWEI, 3 * GWEI)
    assert price(q, policy, cap_for_value(4 * 10**15, 100_000)) is None  # 40 gwei < next base fee
    assert price(FeeQuote(900 * GWEI, GWEI), policy) is None  # beyond the ceiling for anything
    assert price(q, FeePolicy(max_fee=80 * GWEI)) == Fees(80 * GWEI, 3 * GWEI)


def test_a_replacement_raises_both_fees_by_at_least_twelve_and_a_half_percent() -> None:
    policy = FeePolicy(max_fee=500 * GWEI)
    old = Fees(100 * GWEI, 2 * GWEI)
    calm = FeeQuote(next_base=10 * GWEI, tip=GWEI)
    new = replacement(old, calm, policy)
    assert new is not None
    assert new.max_fee >= old.max_fee * 1.125 and new.tip >= old.tip * 1.125  # geth needs +10% on BOTH
    assert new.max_fee >= old.max_fee * 1.1 and new.tip >= old.tip * 1.1
    spike = FeeQuote(next_base=200 * GWEI, tip=30 * GWEI)
    up = replacement(old, spike, policy)
    assert up is not None and up.max_fee >= 430 * GWEI and up.tip == 30 * GWEI  # to the fresh price
    assert replacement(old, spike, policy, cap=150 * GWEI) is None  # not worth it: the old one stays
    assert replacement(Fees(480 * GWEI, GWEI), calm, policy) is None  # would pass the ceiling
    # outbid by tips above what it is worth: it bids up to its cap, no further
    war = FeeQuote(next_base=50 * GWEI, tip=1_000 * GWEI)
    capped = replacement(Fees(101 * GWEI, GWEI), war, policy, cap=300 * GWEI)
    assert capped == Fees(300 * GWEI, 250 * GWEI)
    assert replacement(capped, war, policy, cap=300 * GWEI) is None  # at the cap: it stays


def test_underpriced_means_the_next_block_would_not_take_it_or_pays_more_tip() -> None:
    q = FeeQuote(next_base=50 * GWEI, tip=3 * GWEI)
    assert underpriced(Fees(40 * GWEI, 3 * GWEI), q)
    assert underpriced(Fees(200 * GWEI, 1 * GWEI), q)
    assert not underpriced(Fees(200 * GWEI, 3 * GWEI), q)


# ---------------------------------------------------------------------------------- retries


def test_failed_attempts_back_off_in_blocks_up_to_a_bound_and_changes_make_them_due() -> None:
    t = RetryTracker(max_backoff=8)
    t.observe({"a": ("h1", 0.9)}, head=100)
    assert t.due("a", 100)
    waits = []
    for _ in range(6):
        waits.append(t.failed("a", 100, "would revert") - 100)
    assert waits == [1, 2, 4, 8, 8, 8]  # bounded: an account below MM is tried within 8 blocks
    assert not t.due("a", 107) and t.due("a", 108)
    t.observe({"a": ("h2", 0.9)}, head=101)  # its state changed (or the keeper got collateral)
    assert t.due("a", 101)
    t.sent("a", nonce=7)
    assert not t.due("a", 500)  # in flight: not sent twice
    t.failed("a", 102, "cancelled", retry_now=True)
    assert t.due("a", 102)
    assert [x.key for x in t.stalled(120, 20)] == ["a"] and t.stalled(119, 20) == []
    # queued behind others while the keeper lands transactions: waiting, not stalled
    t.observe({"a": ("h2", 0.9), "b": ("h9", 0.8)}, head=120)
    t.observe({"a": ("h2", 0.9), "b": ("h9", 0.8)}, head=150)
    assert [x.key for x in t.stalled(150, 20, progress_block=145)] == ["a"]  # a failed; b never did
    assert [x.key for x in t.stalled(170, 20, progress_block=145)] == ["a", "b"]  # nothing landed for 25
    # moving on elsewhere (liquidation → deleveraging) is no failure: next block, no backoff
    t.defer("b", 150, "beyond the fund now")
    assert t.items["b"].attempts == 0 and not t.due("b", 150) and t.due("b", 151)
    t.observe({}, head=171)  # no longer below MM: handled, forgotten
    assert t.items == {}


def test_journal_holds_only_what_is_mined_or_in_flight(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.sqlite", keep=3)
    for n in range(6):
        j.record(Journal.nonce_key(n), status="in_flight", nonce=n)
    for n in range(5):
        j.update(Journal.nonce_key(n), status="mined")
    j.remove(Journal.nonce_key(5))  # a nonce something else took
    again = Journal(tmp_path / "journal.sqlite", keep=3)
    assert sorted(again.entries) == [Journal.nonce_key(n) for n in (2, 3, 4)]
    assert again.in_flight() == {}
    rows = again.db.execute("SELECT count(*) FROM journal").fetchone()[0]
    assert rows == 3, "pruned rows are deleted, not only forgotten in memory"


def test_a_journal_json_of_an_older_version_is_imported_once(tmp_path: Path) -> None:
    legacy = {Journal.nonce_key(7): {"ts": 1.0, "status": "in_flight", "nonce": 7}}
    (tmp_path / "journal.json").write_text(json.dumps(legacy))
    j = Journal(tmp_path / "journal.sqlite")
    assert j.in_flight() == legacy
    assert not (tmp_path / "journal.json").exists() and (tmp_path / "journal.json.imported").exists()
    j.update(Journal.nonce_key(7), status="mined")
    assert Journal(tmp_path / "journal.sqlite").seen(Journal.nonce_key(7))["status"] == "mined"


# ---------------------------------------------------------------------------------- unwinding


def test_market_maker_prices_on_the_tick_at_the_mark_less_or_plus_its_spread() -> None:
    from offchain.marketmaker import quote_price

    assert quote_price(2_500.0, 10 * 10**18, 25) == 2_493_750_000 * 10**12  # buys 0.25% below
    assert quote_price(2_500.0, -10 * 10**18, 25) == 2_506_250_000 * 10**12  # sells 0.25% above
    assert quote_price(0.0000001, 10**18, 25) == 10**12, "never below one tick"


def test_market_maker_refuses_bad_requests_naming_the_field() -> None:
    from offchain.attest.eip712 import Domain
    from offchain.marketmaker import MarketMaker
    from offchain.ops.web import HttpError

    class Marks:  # the oracle's GET /v1/marks
        def get(self, path: str) -> dict[str, object]:
            assert path == "/v1/marks"
            return {"block_time": 1_000, "marks": {"1": 2_500.0}}

    mm = MarketMaker("0x" + "11" * 32, Domain(31337, "0x" + "22" * 20), Marks(), 25, max_notional=100_000.0)  # type: ignore[arg-type]
    taker = "0x" + "33" * 20
    for body, field in [
        ({"instrument_id": 1, "size": "0", "taker": taker}, "size"),
        ({"instrument_id": "x", "size": "1", "taker": taker}, "instrument_id"),
        ({"instrument_id": 1, "size": str(10**18), "taker": "bob"}, "taker"),
        ({"instrument_id": 9, "size": str(10**18), "taker": taker}, "instrument_id"),
        ({"instrument_id": 1, "size": str(41 * 10**18), "taker": taker}, "size"),
    ]:
        with pytest.raises(HttpError) as refused:
            mm.quote(body)
        assert str(refused.value).startswith(field + ":"), refused.value
    answer = mm.quote({"instrument_id": 1, "size": str(2 * 10**18), "taker": taker})
    assert answer["order"]["price"] == str(2_493_750_000 * 10**12) and answer["order"]["deadline"] == 1_030


def test_the_keeper_checks_a_quote_against_the_mark_and_picks_its_largest_position() -> None:
    from offchain.attest.messages import Order
    from offchain.keeper.unwind import Quote, QuoteRefused, check_quote, largest_position

    assert largest_position({1: 10 * 10**18, 2: -2 * 10**18, 3: 5 * 10**18}, {1: 2_500.0, 2: 90_000.0}) == (
        2,
        -2 * 10**18,
    )
    assert largest_position({3: 10**18}, {1: 1.0}) is None, "no mark: expired or unpriced"
    maker = "0x" + "44" * 20

    def q(size: int, price: float, instrument: int = 1) -> Quote:
        return Quote(Order(maker, instrument, size, int(price * 10**6) * 10**12, 1, 10), b"")

    check_quote(q(10**18, 2_490.0), 1, 10**18, 2_500.0, 50)  # sells 0.4% below: within 50 bps
    check_quote(q(-(10**18), 2_510.0), 1, -(10**18), 2_500.0, 50)  # buys back 0.4% above
    for bad in (q(10**18, 2_480.0), q(-(10**18), 2_520.0), q(2 * 10**18, 2_500.0), q(10**18, 2_500.0, instrument=2)):
        with pytest.raises(QuoteRefused):
            check_quote(bad, 1, bad.order.size if bad.order.size < 0 else 10**18, 2_500.0, 50)


def _reference_mm(marks: dict[str, float], max_notional: float = 100_000.0) -> "object":
    from offchain.attest.eip712 import Domain
    from offchain.marketmaker import MarketMaker

    class Marks:  # the oracle's GET /v1/marks
        def get(self, path: str) -> dict[str, object]:
            return {"block_time": 1_000, "marks": marks}

    return MarketMaker(
        "0x" + "11" * 32,
        Domain(31337, "0x" + "22" * 20),
        Marks(),
        25,  # type: ignore[arg-type]
        max_notional=max_notional,
    )


@pytest.mark.parametrize(("mark", "contracts"), [(0.0, 10**12), (4e-7, 2 * 10**11)])
def test_market_maker_bids_nothing_for_an_option_marked_below_one_tick(mark: float, contracts: int) -> None:
    from offchain.ops.web import HttpError

    mm = _reference_mm({"7": mark})
    with pytest.raises(HttpError) as refused:  # one tick each would pay far more than they are worth
        mm.quote({"instrument_id": 7, "size": str(contracts * 10**18), "taker": "0x" + "33" * 20})  # type: ignore[attr-defined]
    assert refused.value.status == 409 and "below one price tick" in str(refused.value)


def test_market_maker_keeps_its_live_quotes_within_its_limit() -> None:
    """Orders name no taker: the limit binds the notional of all unexpired quotes together."""
    from offchain.ops.web import HttpError

    mm = _reference_mm({"1": 2_500.0})
    signed = 0.0
    with pytest.raises(HttpError) as refused:
        for i in range(10):
            answer = mm.quote({"instrument_id": 1, "size": str(39 * 10**18), "taker": "0x" + f"{i + 0x50:02x}" * 20})  # type: ignore[attr-defined]
            signed += 39 * int(answer["order"]["price"]) / 10**18
    assert signed <= 100_000.0 and "live quotes" in str(refused.value)
    mm.oracle.get = lambda path: {"block_time": 1_000 + 31, "marks": {"1": 2_500.0}}  # type: ignore[attr-defined]
    assert mm.quote({"instrument_id": 1, "size": str(39 * 10**18), "taker": "0x" + "33" * 20})  # type: ignore[attr-defined]


def test_the_keeper_buys_back_an_option_marked_below_one_tick_at_one_tick() -> None:
    from offchain.attest.messages import Order
    from offchain.keeper.unwind import Quote, QuoteRefused, check_quote, largest_position

    mm = _reference_mm({"9": 4e-7})
    o = mm.quote({"instrument_id": 9, "size": str(-5 * 10**18), "taker": "0x" + "33" * 20})["order"]  # type: ignore[attr-defined]
    quote = Quote(Order(o["maker"], 9, int(o["size"]), int(o["price"]), o["nonce"], o["deadline"]), b"")
    check_quote(quote, 9, -5 * 10**18, 4e-7, 100)  # one tick: accepted
    with pytest.raises(QuoteRefused):
        check_quote(Quote(Order(o["maker"], 9, -5 * 10**18, 3 * 10**12, 1, 1), b""), 9, -5 * 10**18, 4e-7, 100)
    assert largest_position({9: 5 * 10**18}, {9: 4e-7}) is None, "a long with no bid is left to expire"


def test_a_failed_journal_write_is_rolled_back_and_the_next_one_works(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.sqlite")
    j.record(Journal.nonce_key(1), status="in_flight", nonce=1)
    with pytest.raises(TypeError):
        j.record(Journal.nonce_key(2), status="in_flight", raw=b"not json")
    assert Journal.nonce_key(2) not in j.entries  # memory stays what the disk holds
    j.update(Journal.nonce_key(1), status="mined")  # the connection is not left in a transaction
    again = Journal(tmp_path / "journal.sqlite")
    assert again.entries == j.entries and again.seen(Journal.nonce_key(1))["status"] == "mined"
