// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {MarginAttestation} from "./IClearinghouse.sol";

/// @notice One account to liquidate, with the attestation of its current portfolio.
/// @param maxFraction The most (WAD share of the portfolio) the liquidator accepts to take.
struct LiquidationRequest {
    address account;
    MarginAttestation att;
    bytes sigs;
    uint256 maxFraction;
}

/// @notice The oracle's signed auto-deleveraging plan for one bankrupt account: the marks of its
///         positions and, per position, the Merkle root of the ranked queue of opposite-side
///         accounts (leaf = keccak256(keccak256(abi.encode(instrumentId, rank, account,
///         stateHash, value))), where `value` is that account's attested portfolio value at the
///         plan's marks and snapshot, valid while its state hash is `stateHash`).
/// @dev instrumentIds ascending and exactly the account's open positions.
struct AdlAttestation {
    address account;
    bytes32 stateHash;
    uint256[] instrumentIds;
    uint256[] marks;
    bytes32[] queueRoots;
    uint64 snapshotTime;
    uint64 deadline;
    uint32 paramsVersion;
}

/// @notice One step of a deleveraging: the counterparty at `rank` of leg `leg`'s queue, with
///         the state hash and portfolio value its queue leaf commits to.
/// @dev The counterparty's share of the haircut is capped at its equity (cash + `value`), so
///      deleveraging never pushes a counterparty below zero; what a capped fill cannot carry
///      moves down the queue. A counterparty whose state hash is no longer `stateHash` (its
///      portfolio changed since the plan, other than by its own fill on an earlier leg) is
///      skipped: it neither takes the position nor pays.
struct AdlFill {
    uint256 leg;
    address counterparty;
    uint256 rank;
    bytes32 stateHash;
    int256 value;
    bytes32[] proof;
}

/// @title ILiquidationEngine
/// @notice The loss waterfall: partial liquidation of accounts below maintenance margin, the
///         insurance fund for bankruptcies, and auto-deleveraging when the fund cannot cover.
/// @dev The minimal fraction: after taking a pro-rata slice f, the account's equity is
///      E − (β + φ)·f·MM and its requirement (1 − f)·MM (scenario margin is positively
///      homogeneous), so E − (β+φ)·f·MM ≥ (1 + b)(1 − f)·MM gives
///      f = ((1 + b)·MM − E) / ((1 + b − β − φ)·MM), rounded up and capped at 1.
///      b = liquidationBuffer, β = liquidatorBonus, φ = insuranceFee (RiskConfig).
interface ILiquidationEngine {
    /// @notice Thrown when an account is not below the maintenance margin it is held to (a
    ///         liquidation's terms, a stall report, a backstop).
    error NotLiquidatable(int256 equity, uint256 maintenanceMargin);
    /// @notice Thrown when a liquidation would take more of the account than the request's
    ///         `maxFraction`.
    error FractionAboveMax(uint256 fraction, uint256 maxFraction);
    /// @notice Thrown when a liquidator names itself in a request.
    error SelfLiquidation();
    /// @notice Thrown when the liquidator's equity after a batch (before plus the bonuses) is below
    ///         its requirement bound (IM before plus each slice's IM).
    error LiquidatorBelowInitialMargin(int256 equity, uint256 initialMargin);
    /// @notice Thrown when bad debt is flagged or deleveraged although the fund can cover it.
    error FundCanCover(uint256 deficit, uint256 fundBalance);
    /// @notice Thrown when an account is flagged or deleveraged as bankrupt while its equity is not
    ///         negative (and, for a deleveraging, no backstop is due).
    error NotBankrupt(int256 equity);
    /// @notice Thrown when an ADL plan's legs are not exactly the account's open positions in
    ///         ascending order with matching marks and queue roots, or a fill names no such leg.
    error AdlLegsMismatch();
    /// @notice Thrown when a fill skips or repeats a rank of its leg's queue.
    error AdlRankOutOfOrder(uint256 leg, uint256 expectedRank, uint256 rank);
    /// @notice Thrown when a fill's Merkle proof does not lead to its leg's queue root.
    error AdlInvalidProof(uint256 leg, uint256 rank);
    /// @notice Thrown when a fill comes after its leg was fully deleveraged.
    error AdlOvershoot(uint256 leg);
    /// @notice Thrown when a deleveraging moves nothing (every queue member was skipped).
    error AdlIncomplete(uint256 instrumentId, uint256 remaining);
    /// @notice Thrown when a liquidation batch executes none of its requests.
    error NothingLiquidated();
    /// @notice Thrown when a flag is cleared while the account still has a deficit: negative equity
    ///         with positions, or negative cash beyond the fund without.
    error StillBankrupt(int256 equity, uint256 fundBalance);
    /// @notice Thrown when `clearFlag` names an account that is not flagged.
    error NotFlagged(address account);
    /// @notice Thrown when the backstop is asked outside its window: the stall was not confirmed
    ///         BACKSTOP_DELAY after its first report, or that confirmation is too old.
    error BackstopNotDue(uint256 dueAt);
    /// @notice Thrown when a flag would be cleared with an attestation older than the newest
    ///         snapshot the clearinghouse has seen.
    error ClearingWithOlderSnapshot(uint64 snapshotTime, uint64 latestSnapshotTime);
    /// @notice Thrown when a settlement that pays on a short leaves another expired leg of the
    ///         account behind (other than a long still waiting for its own payers).
    error PayerLegsSettleTogether(uint256 instrumentId);
    /// @notice Thrown when a stall report repeats the same state with a snapshot no newer than the
    ///         last confirmation.
    error StaleStallReport(uint64 snapshotTime, uint64 confirmedAt);
    /// @notice Thrown when an instrument is settled before its settlement price is posted.
    error SettlementPriceMissing(bytes32 underlying, uint64 expiry);
    /// @notice Thrown when a long is settled while shorts of its instrument are still open.
    error PayersNotSettled(uint256 instrumentId, uint256 shortOpenInterest);

    event Liquidated(
        address indexed account,
        address indexed liquidator,
        uint256 fraction,
        int256 sliceValue,
        uint256 bonus,
        uint256 fee,
        int256 equityBefore,
        uint256 maintenanceMarginBefore
    );
    event BankruptcyCovered(address indexed account, uint256 deficit, uint256 coveredByFund);
    event BankruptcyFlagged(address indexed account, uint256 deficit);
    event BankruptcyCleared(address indexed account, int256 equity);
    /// @notice A settlement left `account` with no positions and `deficit` of negative cash: the
    ///         fund paid `coveredByFund`, and `shared` is taken from the payouts of the winners
    ///         of the instruments it paid on (see `settlementShortfall`).
    event SettlementDeficitAbsorbed(address indexed account, uint256 deficit, uint256 coveredByFund, uint256 shared);
    /// @notice `account` was shown below MM at `stateHash`; if no liquidation touches it for
    ///         BACKSTOP_DELAY, the backstop may close it against the ADL queue.
    event StallReported(address indexed account, bytes32 stateHash, uint256 maintenanceMargin);
    /// @notice A batch item was not executed because the account's state moved on since its
    ///         attestation (reason 1), it is no longer below maintenance margin (reason 2), or its
    ///         deficit is beyond the fund (reason 3: it goes to flagBankruptcy and ADL).
    event LiquidationSkipped(address indexed account, uint8 reason);
    event Deleveraged(
        address indexed account,
        address indexed counterparty,
        uint256 indexed instrumentId,
        int256 amount,
        uint256 bankruptcyPrice,
        uint256 rank
    );
    /// @notice `haircut` was charged to counterparties; `uncovered` (0 unless the queue's equity
    ///         ran out, or members were skipped and part of the portfolio stays with the account)
    ///         is the account's remaining deficit at the plan's marks, flagged until a next plan
    ///         or the fund resolves it.
    event DeleveragingCompleted(
        address indexed account, uint256 deficit, uint256 fundContribution, uint256 haircut, uint256 uncovered
    );

    /// @notice Liquidates each account in `requests` by the smallest pro-rata slice that restores
    ///         it to MM × (1 + buffer). The caller takes the slices and pays their attested value
    ///         less the bonus. Never paused.
    /// @dev `liquidatorAtt` describes the caller's portfolio BEFORE the liquidation, so nothing a
    ///      victim or a third party does cheaply (a dust deposit changing the fraction) can make
    ///      it stale. Scenario margin is subadditive and positively homogeneous, so the caller's
    ///      requirement afterwards is at most IM_before + Σ fraction_i × IM_i; the call requires
    ///      equity_before + Σ bonus_i (its equity afterwards at the attested marks) to cover that
    ///      bound. Items whose account moved on or recovered are skipped (`LiquidationSkipped`);
    ///      a batch that executes nothing reverts. Receiving a slice is exempt from
    ///      `maxPositions` (up to the 64-position storage bound). The bonus of a whole-portfolio
    ///      liquidation is capped at the account's equity: the fund pays deficits, never bonuses.
    ///      An account holding an expired option is settled first: expired positions never move
    ///      (InstrumentExpired), or settlement's accounting could be bypassed by netting.
    function liquidate(
        LiquidationRequest[] calldata requests,
        MarginAttestation calldata liquidatorAtt,
        bytes calldata liquidatorSigs
    ) external;

    /// @notice Records that `account` is bankrupt beyond what the fund can cover and gates
    ///         withdrawals until its deficit is resolved. Anyone may call. An account without
    ///         positions needs no attestation (its equity is its cash).
    function flagBankruptcy(address account, MarginAttestation calldata att, bytes calldata sigs) external;

    /// @notice Clears the flag of an account whose bad debt is resolved. With positions: its
    ///         equity is ≥ 0 per an attestation at least as new as the newest snapshot seen (no
    ///         tolerance). Without positions (no attestation needed): its cash is ≥ 0, or the fund
    ///         pays the deficit at once. Anyone may call. A flagged account in a deficit the fund
    ///         can cover is cleared by liquidating it whole through the fund.
    /// @dev Withdrawals are gated if and only if some flagged account exists.
    function clearFlag(address account, MarginAttestation calldata att, bytes calldata sigs) external;

    /// @notice Records that `account` was below MM at its current state, dated by the
    ///         attestation's snapshot time. Anyone may call. A report of the same state with a
    ///         newer snapshot (`StaleStallReport` otherwise) within 2 × BACKSTOP_DELAY of the last
    ///         confirmation continues the episode; after a longer gap one starts anew. The
    ///         backstop: once an episode has been confirmed on a snapshot BACKSTOP_DELAY or more
    ///         after its first, with the state unchanged (no liquidation took any of it),
    ///         `deleverage` may close the account against the ADL queue at the marks even though
    ///         it is solvent — within BACKSTOP_DELAY of that confirmation, and only while equity at
    ///         the marks is below the confirmed MM (`BackstopNotDue` otherwise).
    function reportStall(address account, MarginAttestation calldata att, bytes calldata sigs) external;

    /// @notice Closes a bankrupt account's positions against the ranked opposite-side accounts at
    ///         the bankruptcy price, after the fund has paid what it has. Anyone may call.
    /// @dev Also the backstop for a stalled account (see `reportStall`): closed at the marks, no
    ///      haircut, the fund paying a deficit it can cover. May end partial when queue members
    ///      moved since the plan (what is left stays with the account, flagged, for the next
    ///      plan); reverts `AdlIncomplete` only when it moves nothing.
    function deleverage(AdlAttestation calldata att, bytes calldata sigs, AdlFill[] calldata fills) external;

    /// @notice Settles `account`'s expired options in cash at the posted settlement prices.
    ///         Anyone may call.
    /// @dev Payers (shorts of an in-the-money option) settle first and always can; the longs of an
    ///      instrument settle once every short of it has (`PayersNotSettled` until then), and are
    ///      paid in full less their pro-rata share of `settlementShortfall`. A call that pays on a
    ///      short must settle every other expired leg of the account, priced or not, but a long
    ///      still waiting for its own payers (`PayerLegsSettleTogether`) — so no caller splits a
    ///      payer's legs to choose whose payouts absorb its deficit. An account left with no
    ///      positions and negative cash has
    ///      its deficit paid by the insurance fund, and what the fund cannot pay is shared by the
    ///      winners of the instruments it paid on in this call, so settlement never creates an
    ///      account with negative cash and no positions (a deficit with no instrument to share it,
    ///      e.g. found only when its last long settles, is flagged bad debt until the fund covers
    ///      it). An account that keeps positions keeps its negative cash: its expired longs may
    ///      still pay, and its equity answers for it through liquidation.
    function settle(address account, uint256[] calldata instrumentIds) external;

    /// @notice The fraction, bonus and insurance fee a liquidation of an account with `equity`
    ///         and `maintenanceMargin` would use now (what keepers and the oracle compute).
    function liquidationTerms(int256 equity, uint256 maintenanceMargin)
        external
        view
        returns (uint256 fraction, uint256 bonus, uint256 fee);
}
