"""The replica's view of the new events: the params version in force and its grace window, the
position cap, bankruptcy flags set and cleared (and kept when ADL leaves bad debt), heartbeats,
and settlement shortfalls split across the instruments a payer paid on; and every event handler
names an event the contracts emit."""

from __future__ import annotations

from typing import Any

from offchain.chain.contracts import DecodedLog, load_abi
from offchain.chain.deploy import OnchainRiskConfig
from offchain.replica.events import HANDLERS
from offchain.replica.state import ChainState
from offchain.risk.units import WAD

ALICE, BOB = "0x" + "aa" * 20, "0x" + "bb" * 20


def log(block: int, contract: str, name: str, tx: str = "0x01", **args: Any) -> DecodedLog:
    return DecodedLog(block, 0, contract, name, args, tx)


class Clock:
    def block_time(self, block: int) -> int:
        return 1_000 + block


def test_params_version_in_force_and_the_grace_window_of_the_previous_one() -> None:
    s = ChainState()
    s.apply(
        log(
            1,
            "clearinghouse",
            "RiskConfigUpdated",
            config=OnchainRiskConfig(max_positions=8).as_tuple(),
            paramsHash=b"\x01" * 32,
        )
    )
    assert (s.params_version, s.max_positions, s.max_snapshot_age, s.params_changed_block) == (1, 8, 3600, -1)
    assert s.accepts_params_version(1, 10**9) and not s.accepts_params_version(0, 0)
    # a new configuration of the same version: no grace window starts
    s.apply(
        log(
            5,
            "clearinghouse",
            "RiskConfigUpdated",
            config=OnchainRiskConfig(max_positions=4).as_tuple(),
            paramsHash=b"\x01" * 32,
        )
    )
    assert s.max_positions == 4 and s.params_changed_block == -1
    s.apply(
        log(
            9,
            "clearinghouse",
            "RiskConfigUpdated",
            config=OnchainRiskConfig(params_version=2).as_tuple(),
            paramsHash=b"\x02" * 32,
        )
    )
    s.resolve_times(Clock())
    assert (s.params_version, s.previous_params_version, s.params_hash, s.params_changed_at) == (
        2,
        1,
        b"\x02" * 32,
        1_009,
    )
    assert s.accepts_params_version(1, 1_009 + 3600) and not s.accepts_params_version(1, 1_009 + 3601)
    assert s.accepts_params_version(2, 10**9)
    again = ChainState.from_json(s.to_json())
    assert (again.previous_params_version, again.params_changed_at, again.risk_config) == (1, 1_009, s.risk_config)


def test_flags_follow_flagging_clearing_and_adl_outcomes() -> None:
    s = ChainState()
    s.apply(log(1, "engine", "BankruptcyFlagged", account=ALICE, deficit=5))
    s.apply(log(1, "engine", "BankruptcyFlagged", account=BOB, deficit=5))
    s.apply(
        log(2, "engine", "DeleveragingCompleted", account=ALICE, deficit=5, fundContribution=0, haircut=3, uncovered=2)
    )
    assert s.flagged == {ALICE, BOB}, "bad debt the queue could not carry keeps the flag"
    s.apply(log(3, "engine", "BankruptcyCleared", account=ALICE, equity=0))
    s.apply(
        log(3, "engine", "DeleveragingCompleted", account=BOB, deficit=5, fundContribution=0, haircut=5, uncovered=0)
    )
    assert s.flagged == set()
    s.apply(log(4, "engine", "LiquidationSkipped", account=ALICE, reason=1))
    s.apply(log(4, "clearinghouse", "SnapshotPosted", snapshotTime=777))
    assert s.latest_posted_snapshot == 777 and s.counters["engine.LiquidationSkipped"] == 1


def test_settlement_shortfall_is_split_over_what_the_payer_paid_on() -> None:
    s = ChainState()
    # Alice short 2 of instrument 3 and 1 of instrument 4; Bob long the same (replica after the
    # PositionUpdated events that zero Alice's positions)
    s.touch(BOB).positions = {3: 2 * WAD, 4: WAD}
    s.apply(
        log(
            7,
            "clearinghouse",
            "PositionSettled",
            tx="0xaa",
            account=ALICE,
            instrumentId=3,
            size=-2 * WAD,
            payout=-300 * WAD,
        )
    )
    s.apply(
        log(
            7,
            "clearinghouse",
            "PositionSettled",
            tx="0xaa",
            account=ALICE,
            instrumentId=4,
            size=-WAD,
            payout=-100 * WAD,
        )
    )
    s.apply(
        log(
            7,
            "engine",
            "SettlementDeficitAbsorbed",
            tx="0xaa",
            account=ALICE,
            deficit=50 * WAD,
            coveredByFund=10 * WAD,
            shared=40 * WAD,
        )
    )
    assert s.settlement_open_interest == {3: 2 * WAD, 4: WAD}
    assert s.settlement_shortfall == {3: 30 * WAD, 4: 10 * WAD}
    # LiquidationEngine._longPayout: the long's share of the shortfall, rounded up, at most the payout
    assert s.settlement_cut(3, WAD, 150 * WAD) == 15 * WAD
    assert s.settlement_cut(4, WAD, 5 * WAD) == 5 * WAD
    assert s.settlement_cut(3, -WAD, 150 * WAD) == 0


def test_every_handler_names_an_event_the_contracts_emit() -> None:
    """An event renamed in a contract would otherwise stop changing the replica without a word."""
    contracts = {"clearinghouse": "Clearinghouse", "engine": "LiquidationEngine", "fund": "InsuranceFund"}
    emitted = {
        f"{label}.{item['name']}"
        for label, name in contracts.items()
        for item in load_abi(name)
        if item["type"] == "event"
    }
    assert set(HANDLERS) - emitted == set()
