// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {MarginAttestation, RiskConfig} from "../interfaces/IClearinghouse.sol";
import {IInsuranceFund} from "../interfaces/IInsuranceFund.sol";
import {
    AdlAttestation,
    AdlFill,
    ILiquidationEngine,
    LiquidationRequest
} from "../interfaces/ILiquidationEngine.sol";
import {FixedPoint} from "../libraries/FixedPoint.sol";
import {Clearinghouse} from "./Clearinghouse.sol";

/// @title LiquidationEngine
/// @notice The loss waterfall — account cash, then the insurance fund, then auto-deleveraging —
///         on top of the clearinghouse's engine hooks. Nothing here can be paused.
contract LiquidationEngine is ILiquidationEngine, ReentrancyGuardTransient {
    using FixedPoint for uint256;

    uint256 internal constant WAD = 1e18;

    bytes32 public constant ADL_ATTESTATION_TYPEHASH = keccak256(
        "AdlAttestation(address account,bytes32 stateHash,uint256[] instrumentIds,uint256[] marks,"
        "bytes32[] queueRoots,uint64 snapshotTime,uint64 deadline,uint32 paramsVersion)"
    );

    Clearinghouse public immutable clearinghouse;
    IInsuranceFund public immutable fund;

    /// @notice Bankrupt accounts awaiting deleveraging; withdrawals are gated while any exist.
    mapping(address => bool) public flagged;
    uint256 public flaggedCount;

    constructor(Clearinghouse clearinghouse_, IInsuranceFund fund_) {
        clearinghouse = clearinghouse_;
        fund = fund_;
    }

    // ============================================================================ Liquidation

    /// @inheritdoc ILiquidationEngine
    function liquidate(
        LiquidationRequest[] calldata requests,
        MarginAttestation calldata liquidatorAtt,
        bytes calldata liquidatorSigs
    ) external nonReentrant {
        RiskConfig memory config = clearinghouse.riskConfig();
        uint256 health = fund.health();
        for (uint256 i; i < requests.length; ++i) {
            _liquidateOne(requests[i], config, health);
        }
        int256 equity = clearinghouse.verifyMarginAttestation(msg.sender, liquidatorAtt, liquidatorSigs);
        if (equity < int256(liquidatorAtt.initialMargin)) {
            revert LiquidatorBelowInitialMargin(equity, liquidatorAtt.initialMargin);
        }
    }

    /// @inheritdoc ILiquidationEngine
    function liquidationTerms(int256 equity, uint256 maintenanceMargin)
        external
        view
        returns (uint256 fraction, uint256 bonus, uint256 fee)
    {
        return _terms(equity, maintenanceMargin, clearinghouse.riskConfig(), fund.health());
    }

    function _liquidateOne(LiquidationRequest calldata r, RiskConfig memory config, uint256 health) internal {
        if (r.account == msg.sender) revert SelfLiquidation();
        int256 equity = clearinghouse.verifyMarginAttestation(r.account, r.att, r.sigs);
        uint256 mm = r.att.maintenanceMargin;
        (uint256 fraction, uint256 bonus, uint256 fee) = _terms(equity, mm, config, health);
        if (fraction > r.maxFraction) revert FractionAboveMax(fraction, r.maxFraction);
        if (fraction == WAD) {
            // Whatever the account cannot pay must be within the fund's reach: cap the bonus,
            // and refuse when even the bare deficit is not (that account goes to ADL instead).
            uint256 available = fund.fundBalance();
            uint256 deficit = equity < 0 ? uint256(-equity) : 0;
            if (deficit > available) revert FundCannotCover(deficit, available);
            uint256 maxBonus = equity > 0 ? uint256(equity) + available : available - deficit;
            if (bonus > maxBonus) bonus = maxBonus;
        }
        int256 sliceValue = fraction == WAD ? r.att.value : _mulWadFloor(r.att.value, fraction);

        clearinghouse.engineTransferSlice(r.account, msg.sender, fraction);
        clearinghouse.engineMoveCash(msg.sender, r.account, sliceValue - int256(bonus));
        if (fee != 0) {
            fee = clearinghouse.enginePayOut(r.account, address(fund), fee);
            if (fee != 0) fund.recordFee(r.account, fee);
        }
        if (fraction == WAD) _coverDeficit(r.account);
        emit Liquidated(r.account, msg.sender, fraction, sliceValue, bonus, fee, equity, mm);
    }

    /// @dev Fraction, bonus and fee of a liquidation (see ILiquidationEngine for the formula).
    ///      The fraction depends only on the account and the configuration; the fund's health
    ///      only raises the fee (up to 2× below target), within the slack above the target.
    function _terms(int256 equity, uint256 mm, RiskConfig memory c, uint256 health)
        internal
        pure
        returns (uint256 fraction, uint256 bonus, uint256 fee)
    {
        if (equity >= int256(mm)) revert NotLiquidatable(equity, mm);
        if (equity <= 0) return (WAD, mm.mulWadDown(c.liquidatorBonus), 0);
        uint256 e = uint256(equity);
        fraction = _fraction(e, mm, c);
        uint256 sliceMm = mm.mulWadUp(fraction);
        bonus = sliceMm.mulWadDown(c.liquidatorBonus);
        uint256 baseFee = sliceMm.mulWadDown(c.insuranceFee);
        uint256 wanted = health >= WAD ? baseFee : baseFee + baseFee.mulWadDown(WAD - health);
        fee = Math.min(wanted, _slack(e, mm, fraction, bonus, c));
    }

    /// @dev ((1 + b)·MM − E) / ((1 + b − β − φ)·MM), rounded up; the whole portfolio when that is
    ///      at least 1 or would leave less than the dust margin behind.
    function _fraction(uint256 e, uint256 mm, RiskConfig memory c) internal pure returns (uint256 fraction) {
        uint256 onePlusBuffer = WAD + c.liquidationBuffer;
        uint256 target = mm.mulWadUp(onePlusBuffer);
        uint256 denominator = mm.mulWadDown(onePlusBuffer - c.liquidatorBonus - c.insuranceFee);
        fraction = (target - e).divWadUp(denominator);
        if (fraction >= WAD || mm.mulWadDown(WAD - fraction) < c.dustMargin) fraction = WAD;
    }

    /// @dev What the account can pay in fees after the bonus and still meet its target.
    function _slack(uint256 e, uint256 mm, uint256 fraction, uint256 bonus, RiskConfig memory c)
        internal
        pure
        returns (uint256)
    {
        uint256 remainingTarget =
            fraction == WAD ? 0 : mm.mulWadUp(WAD - fraction).mulWadUp(WAD + c.liquidationBuffer);
        uint256 afterBonus = e > bonus ? e - bonus : 0;
        return afterBonus > remainingTarget ? afterBonus - remainingTarget : 0;
    }

    function _coverDeficit(address account) internal {
        int256 cash = clearinghouse.cashOf(account);
        if (cash >= 0) return;
        uint256 deficit = uint256(-cash);
        uint256 tokenAmount = fund.release(account, deficit);
        uint256 covered = clearinghouse.enginePayIn(account, address(fund), tokenAmount);
        emit BankruptcyCovered(account, deficit, covered);
    }

    // ============================================================================ Bankruptcy and ADL

    /// @inheritdoc ILiquidationEngine
    function flagBankruptcy(address account, MarginAttestation calldata att, bytes calldata sigs)
        external
        nonReentrant
    {
        int256 equity = clearinghouse.verifyMarginAttestation(account, att, sigs);
        if (equity >= 0) revert NotBankrupt(equity);
        uint256 deficit = uint256(-equity);
        uint256 available = fund.fundBalance();
        if (available >= deficit) revert FundCanCover(deficit, available);
        if (!flagged[account]) {
            flagged[account] = true;
            if (flaggedCount++ == 0) clearinghouse.engineSetWithdrawalsGated(true);
        }
        emit BankruptcyFlagged(account, deficit);
    }

    /// @dev Working state of one deleveraging, kept in memory.
    struct Plan {
        address account;
        int256[] sizes;
        uint256[] remaining;
        uint256[] nextRank;
        uint256 gross; // Σ |size| × mark: the weights of the haircut
        uint256 totalSize; // Σ |size|: the weights when every mark is zero
        uint256 haircut; // deficit left after the fund: taken from the counterparties
        address lastCounterparty;
    }

    /// @inheritdoc ILiquidationEngine
    function deleverage(AdlAttestation calldata att, bytes calldata sigs, AdlFill[] calldata fills)
        external
        nonReentrant
    {
        Plan memory plan = _checkAdl(att, sigs);
        (uint256 deficit, uint256 contribution) = _fundContribution(att, plan);
        for (uint256 i; i < fills.length; ++i) {
            _deleverageOne(att, plan, fills[i]);
        }
        for (uint256 leg; leg < plan.remaining.length; ++leg) {
            if (plan.remaining[leg] != 0) revert AdlIncomplete(att.instrumentIds[leg], plan.remaining[leg]);
        }
        // Per-fill rounding can leave the account a few wei short: the last counterparty pays it.
        int256 cash = clearinghouse.cashOf(att.account);
        if (cash < 0) clearinghouse.engineMoveCash(plan.lastCounterparty, att.account, -cash);
        if (flagged[att.account]) {
            flagged[att.account] = false;
            if (--flaggedCount == 0) clearinghouse.engineSetWithdrawalsGated(false);
        }
        emit DeleveragingCompleted(att.account, deficit, contribution, plan.haircut);
    }

    function _checkAdl(AdlAttestation calldata att, bytes calldata sigs) internal returns (Plan memory plan) {
        RiskConfig memory config = clearinghouse.riskConfig();
        if (att.paramsVersion != config.paramsVersion) revert WrongParamsVersion(config.paramsVersion, att.paramsVersion);
        bytes32 current = clearinghouse.stateHashOf(att.account);
        if (att.stateHash != current) revert WrongPortfolioState(current, att.stateHash);
        clearinghouse.verifyOracleSignatures(hashAdlAttestation(att), att.snapshotTime, att.deadline, sigs);

        uint256 n = att.instrumentIds.length;
        if (n == 0 || att.marks.length != n || att.queueRoots.length != n) revert AdlLegsMismatch();
        // The legs must be exactly the open positions: as many, distinct (ascending), all open.
        if (clearinghouse.openInstruments(att.account).length != n) revert AdlLegsMismatch();
        plan.account = att.account;
        plan.sizes = new int256[](n);
        plan.remaining = new uint256[](n);
        plan.nextRank = new uint256[](n);
        for (uint256 leg; leg < n; ++leg) {
            if (leg > 0 && att.instrumentIds[leg] <= att.instrumentIds[leg - 1]) revert AdlLegsMismatch();
            int256 size = clearinghouse.positionOf(att.account, att.instrumentIds[leg]);
            if (size == 0) revert AdlLegsMismatch();
            uint256 abs = uint256(size > 0 ? size : -size);
            plan.sizes[leg] = size;
            plan.remaining[leg] = abs;
            plan.gross += abs.mulWadUp(att.marks[leg]);
            plan.totalSize += abs;
        }
    }

    /// @dev Equity at the attested marks must be negative beyond what the fund holds; the fund
    ///      then pays everything it has and the rest becomes the counterparties' haircut.
    function _fundContribution(AdlAttestation calldata att, Plan memory plan)
        internal
        returns (uint256 deficit, uint256 contribution)
    {
        int256 equity = clearinghouse.cashOf(att.account);
        for (uint256 leg; leg < plan.sizes.length; ++leg) {
            equity += _mulWadFloor(plan.sizes[leg], att.marks[leg]);
        }
        if (equity >= 0) revert NotBankrupt(equity);
        deficit = uint256(-equity);
        uint256 available = fund.fundBalance();
        if (available >= deficit) revert FundCanCover(deficit, available);
        if (available != 0) {
            uint256 tokenAmount = fund.release(att.account, available);
            contribution = clearinghouse.enginePayIn(att.account, address(fund), tokenAmount);
        }
        plan.haircut = deficit - contribution;
    }

    function _deleverageOne(AdlAttestation calldata att, Plan memory plan, AdlFill calldata fill) internal {
        uint256 amount = _admit(att, plan, fill);
        if (amount == 0) return;
        _execute(plan, fill.counterparty, att.instrumentIds[fill.leg], att.marks[fill.leg], plan.sizes[fill.leg], amount, fill.rank);
    }

    /// @dev Checks the fill's place in its queue and returns what it deleverages (0 for a
    ///      counterparty that has since closed or flipped its opposite position).
    function _admit(AdlAttestation calldata att, Plan memory plan, AdlFill calldata fill) internal view returns (uint256 amount) {
        uint256 leg = fill.leg;
        if (leg >= plan.sizes.length) revert AdlLegsMismatch();
        if (fill.rank != plan.nextRank[leg]) revert AdlRankOutOfOrder(leg, plan.nextRank[leg], fill.rank);
        plan.nextRank[leg] = fill.rank + 1;
        if (plan.remaining[leg] == 0) revert AdlOvershoot(leg);
        uint256 id = att.instrumentIds[leg];
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(id, fill.rank, fill.counterparty))));
        if (!MerkleProof.verifyCalldata(fill.proof, att.queueRoots[leg], leaf)) revert AdlInvalidProof(leg, fill.rank);
        if (fill.counterparty == plan.account) return 0;
        int256 size = plan.sizes[leg];
        int256 theirs = clearinghouse.positionOf(fill.counterparty, id);
        if (theirs == 0 || (theirs > 0) == (size > 0)) return 0;
        amount = Math.min(plan.remaining[leg], uint256(theirs > 0 ? theirs : -theirs));
        plan.remaining[leg] -= amount;
    }

    /// @dev Moves `amount` of the bankrupt position to the counterparty at the bankruptcy price:
    ///      the mark, moved against the counterparty by its share of the haircut, which is spread
    ///      over the legs by notional (by size when every mark is zero).
    function _execute(
        Plan memory plan,
        address counterparty,
        uint256 id,
        uint256 mark,
        int256 size,
        uint256 amount,
        uint256 rank
    ) internal {
        plan.lastCounterparty = counterparty;
        uint256 share = plan.gross != 0
            ? Math.mulDiv(amount.mulWadUp(mark), plan.haircut, plan.gross, Math.Rounding.Ceil)
            : Math.mulDiv(amount, plan.haircut, plan.totalSize, Math.Rounding.Ceil);
        int256 signedAmount = size > 0 ? int256(amount) : -int256(amount);
        int256 paid = size > 0 ? int256(amount.mulWadDown(mark) + share) : int256(share) - int256(amount.mulWadUp(mark));
        clearinghouse.engineMovePosition(plan.account, counterparty, id, signedAmount);
        clearinghouse.engineMoveCash(counterparty, plan.account, paid);
        uint256 perContract = share.divWadDown(amount);
        emit Deleveraged(
            plan.account, counterparty, id, signedAmount, size > 0 ? mark + perContract : (mark > perContract ? mark - perContract : 0), rank
        );
    }

    /// @notice The EIP-712 struct hash of an ADL attestation (signed under the clearinghouse's domain).
    function hashAdlAttestation(AdlAttestation calldata att) public pure returns (bytes32) {
        return keccak256(
            abi.encode(
                ADL_ATTESTATION_TYPEHASH,
                att.account,
                att.stateHash,
                keccak256(abi.encodePacked(att.instrumentIds)),
                keccak256(abi.encodePacked(att.marks)),
                keccak256(abi.encodePacked(att.queueRoots)),
                att.snapshotTime,
                att.deadline,
                att.paramsVersion
            )
        );
    }

    // ============================================================================ Math

    /// @dev x × y / WAD rounded toward −∞ (the conservative side for a credited value).
    function _mulWadFloor(int256 x, uint256 y) internal pure returns (int256) {
        if (x >= 0) return int256(uint256(x).mulWadDown(y));
        return -int256(uint256(-x).mulWadUp(y));
    }
}
