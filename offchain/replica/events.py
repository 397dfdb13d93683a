"""How each contract event changes the replica: one handler per event, found by name.

`HANDLERS` maps `contract.EventName` (the contract labels of offchain/chain/contracts.py:
clearinghouse, engine, fund) to a function `(state, entry) -> None` that applies the event to a
ChainState. Handlers are registered with `@handles(...)`; ChainState.apply looks the event up
and ignores the events no handler names (it still counts them). Adding an event is adding one
handler here.

What a reorg must be able to undo: the accounts an event names in its `account`, `from` or `to`
argument are saved in the block's undo record before any handler runs, and the globals
(ChainState._globals_json) are saved whole; a handler that replaces an instrument or a
settlement price saves it first with `state.note_instrument` / `state.note_price`. A handler
changes an account through `state.touch(address)`, which also marks it for the next save.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from offchain.attest.liquidation import LiquidationConfig, transfer_slice
from offchain.attest.state_hash import chain_state_hash, instrument_from_chain, next_state_hash, underlying_from_bytes32
from offchain.chain.contracts import DecodedLog
from offchain.chain.deploy import OnchainRiskConfig
from offchain.risk.units import WAD

if TYPE_CHECKING:
    from offchain.replica.state import ChainState

Handler = Callable[["ChainState", DecodedLog], None]

HANDLERS: dict[str, Handler] = {}


def handles(*names: str) -> Callable[[Handler], Handler]:
    """Registers the decorated function as the handler of each event in `names`."""

    def register(handler: Handler) -> Handler:
        for name in names:
            if name in HANDLERS:
                raise ValueError(f"{name} has two handlers: {HANDLERS[name].__name__} and {handler.__name__}")
            HANDLERS[name] = handler
        return handler

    return register


# ------------------------------------------------------------------ instruments and prices


@handles("clearinghouse.InstrumentListed")
def instrument_listed(state: ChainState, entry: DecodedLog) -> None:
    a = entry.args
    instrument_id = int(a["instrumentId"])
    state.note_instrument(instrument_id)
    state.instruments[instrument_id] = instrument_from_chain(
        bytes(a["underlying"]), int(a["kind"]), int(a["expiry"]), int(a["strike"])
    )


@handles("clearinghouse.SettlementPricePosted")
def settlement_price_posted(state: ChainState, entry: DecodedLog) -> None:
    a = entry.args
    key = (underlying_from_bytes32(bytes(a["underlying"])), int(a["expiry"]))
    state.note_price(key)
    state.settlement_prices[key] = int(a["price"]) / WAD


# ------------------------------------------------------------------ accounts


@handles("clearinghouse.CashUpdated")
def cash_updated(state: ChainState, entry: DecodedLog) -> None:
    state.touch(entry.args["account"]).cash = int(entry.args["cash"])


@handles("clearinghouse.Deposited")
def deposited(state: ChainState, entry: DecodedLog) -> None:
    state.touch(entry.args["account"]).net_deposits += int(entry.args["amount"])


@handles("clearinghouse.Withdrawn")
def withdrawn(state: ChainState, entry: DecodedLog) -> None:
    state.touch(entry.args["account"]).net_deposits -= int(entry.args["amount"])


@handles("clearinghouse.PositionUpdated")
def position_updated(state: ChainState, entry: DecodedLog) -> None:
    a = entry.args
    acct = state.touch(a["account"])
    instrument_id, size = int(a["instrumentId"]), int(a["size"])
    state.verify_hash(a["account"], acct, next_state_hash(acct.state_hash, instrument_id, size), bytes(a["stateHash"]))
    acct.set_position(instrument_id, size)


@handles("clearinghouse.PortfolioSliceTransferred")
def slice_transferred(state: ChainState, entry: DecodedLog) -> None:
    a = entry.args
    src, dst = state.touch(a["from"]), state.touch(a["to"])
    _, _, src_updates, dst_updates = transfer_slice(
        [int(i) for i in a["instrumentIds"]], src.positions, dst.positions, int(a["fraction"])
    )
    for who, acct, updates, emitted in (
        (a["from"], src, src_updates, a["fromStateHash"]),
        (a["to"], dst, dst_updates, a["toStateHash"]),
    ):
        computed = chain_state_hash(acct.state_hash, updates)
        for instrument_id, size in updates:
            acct.set_position(instrument_id, size)
        state.verify_hash(who, acct, computed, bytes(emitted))


# ------------------------------------------------------------------ option settlement


@handles("clearinghouse.PositionSettled")
def position_settled(state: ChainState, entry: DecodedLog) -> None:
    """Records an instrument's open interest when its settlement starts (the shorts' total
    before any of them settled) and what each short paid, for a deficit absorbed in the same
    call (LiquidationEngine.settle → _absorbSettlementDeficit)."""
    a = entry.args
    instrument_id, size, payout = int(a["instrumentId"]), int(a["size"]), int(a["payout"])
    if not state.settlement_open_interest.get(instrument_id):
        # the position is already zeroed in the replica (PositionUpdated comes first)
        shorts = sum(
            -acct.positions.get(instrument_id, 0)
            for acct in state.accounts.values()
            if acct.positions.get(instrument_id, 0) < 0
        )
        state.settlement_open_interest[instrument_id] = shorts + (-size if size < 0 else 0)
    key = (entry.tx, a["account"])
    settling = state.settling
    if settling is None or settling[:2] != key:
        settling = state.settling = (entry.tx, a["account"], [])
    if size < 0 and payout < 0:
        settling[2].append((instrument_id, -payout))


@handles("engine.SettlementDeficitAbsorbed")
def settlement_deficit_absorbed(state: ChainState, entry: DecodedLog) -> None:
    """Shares what the payer's winners absorb over the instruments it paid on in that call, in
    proportion to what it paid on each (the last one takes the rounding)."""
    a = entry.args
    shared = int(a["shared"])
    settling = state.settling
    paid = settling[2] if settling is not None and settling[:2] == (entry.tx, a["account"]) else []
    total = sum(p for _, p in paid)
    if shared and total:
        left = shared
        for k, (instrument_id, p) in enumerate(paid):
            part = left if k == len(paid) - 1 else shared * p // total
            state.settlement_shortfall[instrument_id] = state.settlement_shortfall.get(instrument_id, 0) + part
            left -= part
    state.settling = None


# ------------------------------------------------------------------ governance and snapshots


@handles("clearinghouse.RiskConfigUpdated")
def risk_config_updated(state: ChainState, entry: DecodedLog) -> None:
    config = OnchainRiskConfig.from_chain(entry.args["config"])
    version = config.params_version
    if state.params_version and version != state.params_version:
        # RiskGovernance.executeRiskConfig: the old version stays acceptable for a while
        state.previous_params_version = state.params_version
        state.params_changed_block = entry.block
        state.params_changed_at = 0
    state.params_version = version
    state.risk_config = config.by_member()
    state.params_hash = bytes(entry.args.get("paramsHash", b""))
    state.liquidation_config = LiquidationConfig.from_risk_config(config)


@handles("clearinghouse.SnapshotPosted")
def snapshot_posted(state: ChainState, entry: DecodedLog) -> None:
    state.latest_posted_snapshot = max(state.latest_posted_snapshot, int(entry.args["snapshotTime"]))


# ------------------------------------------------------------------ insurance fund


@handles("fund.Deposited", "fund.FeeReceived", "fund.DeficitCovered")
def fund_balance_changed(state: ChainState, entry: DecodedLog) -> None:
    state.fund_balance = int(entry.args["balance"])


@handles("fund.TargetUpdated")
def fund_target_updated(state: ChainState, entry: DecodedLog) -> None:
    state.fund_target = int(entry.args["target"])


# ------------------------------------------------------------------ bankruptcy flags


@handles("engine.BankruptcyFlagged")
def bankruptcy_flagged(state: ChainState, entry: DecodedLog) -> None:
    state.flagged.add(entry.args["account"])


@handles("engine.BankruptcyCleared")
def bankruptcy_cleared(state: ChainState, entry: DecodedLog) -> None:
    state.flagged.discard(entry.args["account"])


@handles("engine.DeleveragingCompleted")
def deleveraging_completed(state: ChainState, entry: DecodedLog) -> None:
    # what the queue could not carry stays as negative cash, flagged until the fund covers it
    a = entry.args
    if int(a.get("uncovered", 0)):
        state.flagged.add(a["account"])
    else:
        state.flagged.discard(a["account"])
