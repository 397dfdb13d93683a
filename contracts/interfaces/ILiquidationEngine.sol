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
///         accounts (leaf = keccak256(keccak256(abi.encode(instrumentId, rank, account)))).
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

/// @notice One step of a deleveraging: the counterparty at `rank` of leg `leg`'s queue.
struct AdlFill {
    uint256 leg;
    address counterparty;
    uint256 rank;
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
    error NotLiquidatable(int256 equity, uint256 maintenanceMargin);
    error FractionAboveMax(uint256 fraction, uint256 maxFraction);
    error SelfLiquidation();
    error LiquidatorBelowInitialMargin(int256 equity, uint256 initialMargin);
    error FundCannotCover(uint256 deficit, uint256 fundBalance);
    error FundCanCover(uint256 deficit, uint256 fundBalance);
    error NotBankrupt(int256 equity);
    error WrongPortfolioState(bytes32 expected, bytes32 attested);
    error WrongParamsVersion(uint32 expected, uint32 attested);
    error AdlLegsMismatch();
    error AdlRankOutOfOrder(uint256 leg, uint256 expectedRank, uint256 rank);
    error AdlInvalidProof(uint256 leg, uint256 rank);
    error AdlOvershoot(uint256 leg);
    error AdlIncomplete(uint256 instrumentId, uint256 remaining);

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
    event Deleveraged(
        address indexed account,
        address indexed counterparty,
        uint256 indexed instrumentId,
        int256 amount,
        uint256 bankruptcyPrice,
        uint256 rank
    );
    event DeleveragingCompleted(address indexed account, uint256 deficit, uint256 fundContribution, uint256 haircut);

    /// @notice Liquidates each account in `requests` (each must be below MM) by the smallest
    ///         pro-rata slice that restores it to MM × (1 + buffer). The caller takes the slices,
    ///         pays their attested value less the bonus, and must meet IM afterwards per
    ///         `liquidatorAtt` (its post-liquidation portfolio). Never paused.
    function liquidate(
        LiquidationRequest[] calldata requests,
        MarginAttestation calldata liquidatorAtt,
        bytes calldata liquidatorSigs
    ) external;

    /// @notice Records that `account` is bankrupt beyond what the fund can cover and gates
    ///         withdrawals until its deficit is deleveraged. Anyone may call.
    function flagBankruptcy(address account, MarginAttestation calldata att, bytes calldata sigs) external;

    /// @notice Closes a bankrupt account's positions against the ranked opposite-side accounts at
    ///         the bankruptcy price, after the fund has paid what it has. Anyone may call.
    function deleverage(AdlAttestation calldata att, bytes calldata sigs, AdlFill[] calldata fills) external;

    /// @notice The fraction, bonus and insurance fee a liquidation of an account with `equity`
    ///         and `maintenanceMargin` would use now (what keepers and the oracle compute).
    function liquidationTerms(int256 equity, uint256 maintenanceMargin)
        external
        view
        returns (uint256 fraction, uint256 bonus, uint256 fee);
}
