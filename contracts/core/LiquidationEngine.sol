// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {
    IClearinghouse,
    Instrument,
    InstrumentKind,
    MarginAttestation,
    RiskConfig
} from "../interfaces/IClearinghouse.sol";
import {IClearinghouseEngineHooks} from "../interfaces/IClearinghouseEngineHooks.sol";
import {IInsuranceFund} from "../interfaces/IInsuranceFund.sol";
import {AdlAttestation, AdlFill, ILiquidationEngine, LiquidationRequest} from "../interfaces/ILiquidationEngine.sol";
import {AttestationHashing} from "../libraries/AttestationHashing.sol";
import {FixedPoint, WAD} from "../libraries/FixedPoint.sol";

/// @title LiquidationEngine
/// @notice The loss waterfall — account cash, then the insurance fund, then auto-deleveraging —
///         on top of the clearinghouse's engine hooks. Nothing here can be paused.
contract LiquidationEngine is ILiquidationEngine, ReentrancyGuardTransient {
    using FixedPoint for uint256;
    using FixedPoint for int256;

    /// @notice The EIP-712 type hash of an ADL attestation (see AttestationHashing).
    bytes32 public constant ADL_ATTESTATION_TYPEHASH = AttestationHashing.ADL_ATTESTATION_TYPEHASH;

    IClearinghouseEngineHooks public immutable clearinghouse;
    IInsuranceFund public immutable fund;

    uint8 internal constant SKIP_STATE_MOVED = 1;
    uint8 internal constant SKIP_RECOVERED = 2;
    uint8 internal constant SKIP_FUND_CANNOT_COVER = 3;

    /// @notice How long an account reported below MM must stay untouched by any liquidation before
    ///         the backstop may close it against the ADL queue.
    uint256 public constant BACKSTOP_DELAY = 60 seconds;

    /// @notice A report that an account was below MM at `stateHash` since `since` (unix time),
    ///         last confirmed (still below `maintenanceMargin`, same state) at `confirmedAt`.
    struct Stall {
        bytes32 stateHash;
        uint64 since;
        uint64 confirmedAt;
        uint128 maintenanceMargin;
    }

    /// @notice Stall reports; one only counts while the account's state hash is unchanged.
    mapping(address => Stall) public stalls;

    /// @notice The instrument's open interest when its settlement started (the longs' total).
    mapping(uint256 => uint256) public settlementOpenInterest;
    /// @notice Settlement loss of an instrument that neither its payers nor the fund could pay:
    ///         taken pro rata from the payouts of its longs.
    mapping(uint256 => uint256) public settlementShortfall;
    /// @notice Shortfall credited to payers but not yet recovered from longs' payouts (WAD).
    uint256 public outstandingShortfall;

    constructor(IClearinghouseEngineHooks clearinghouse_, IInsuranceFund fund_) {
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
        // The liquidator's portfolio before any slice moves: what it does not control (the
        // victims' cash, the fraction) cannot make this attestation stale.
        int256 equity = clearinghouse.verifyMarginAttestation(msg.sender, liquidatorAtt, liquidatorSigs);
        uint256 requirement = liquidatorAtt.initialMargin;
        uint256 executed;
        for (uint256 i; i < requests.length; ++i) {
            (bool done, uint256 bonus, uint256 sliceIm) = _liquidateOne(requests[i], config, health);
            if (!done) continue;
            ++executed;
            equity += int256(bonus);
            requirement += sliceIm;
        }
        if (executed == 0) revert NothingLiquidated();
        // Equity afterwards (at the attested marks) is equity before plus the bonuses; the
        // requirement afterwards is at most IM before plus each slice's IM (subadditivity).
        if (equity < int256(requirement)) revert LiquidatorBelowInitialMargin(equity, requirement);
    }

    /// @inheritdoc ILiquidationEngine
    function liquidationTerms(int256 equity, uint256 maintenanceMargin)
        external
        view
        returns (uint256 fraction, uint256 bonus, uint256 fee)
    {
        return _terms(equity, maintenanceMargin, clearinghouse.riskConfig(), fund.health());
    }

    /// @dev Liquidates one account, or skips it (returns done = false) when its state moved on,
    ///      it recovered, or the fund cannot cover its deficit: one stale item never sinks a batch.
    function _liquidateOne(LiquidationRequest calldata r, RiskConfig memory config, uint256 health)
        internal
        returns (bool done, uint256 bonus, uint256 sliceIm)
    {
        if (r.account == msg.sender) revert SelfLiquidation();
        if (clearinghouse.stateHashOf(r.account) != r.att.stateHash) {
            emit LiquidationSkipped(r.account, SKIP_STATE_MOVED);
            return (false, 0, 0);
        }
        int256 equity = clearinghouse.verifyMarginAttestation(r.account, r.att, r.sigs);
        uint256 mm = r.att.maintenanceMargin;
        if (equity >= int256(mm)) {
            emit LiquidationSkipped(r.account, SKIP_RECOVERED);
            return (false, 0, 0);
        }
        uint256 fraction;
        uint256 fee;
        (fraction, bonus, fee) = _terms(equity, mm, config, health);
        if (fraction > r.maxFraction) revert FractionAboveMax(fraction, r.maxFraction);
        if (fraction == WAD && equity < 0 && uint256(-equity) > fund.fundBalance()) {
            // Beyond the fund: this account goes to flagBankruptcy and ADL instead.
            emit LiquidationSkipped(r.account, SKIP_FUND_CANNOT_COVER);
            return (false, 0, 0);
        }
        int256 sliceValue = fraction == WAD ? r.att.value : r.att.value.mulWadFloor(fraction);
        sliceIm = fraction == WAD ? r.att.initialMargin : r.att.initialMargin.mulWadUp(fraction);

        clearinghouse.engineTransferSlice(r.account, msg.sender, fraction);
        clearinghouse.engineMoveCash(msg.sender, r.account, sliceValue - int256(bonus));
        if (fee != 0) {
            fee = clearinghouse.enginePayOut(r.account, address(fund), fee);
            if (fee != 0) fund.recordFee(r.account, fee);
        }
        if (fraction == WAD) {
            _coverDeficit(r.account);
            if (clearinghouse.flagged(r.account)) _unflag(r.account, clearinghouse.cashOf(r.account));
        }
        emit Liquidated(r.account, msg.sender, fraction, sliceValue, bonus, fee, equity, mm);
        return (true, bonus, sliceIm);
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
        // A bankrupt account has nothing to pay a bonus with, and the fund pays deficits only.
        if (equity <= 0) return (WAD, 0, 0);
        uint256 e = uint256(equity);
        fraction = _fraction(e, mm, c);
        uint256 sliceMm = mm.mulWadUp(fraction);
        bonus = sliceMm.mulWadDown(c.liquidatorBonus);
        // Never more than the account's equity (binds only for whole-portfolio liquidations).
        if (bonus > e) bonus = e;
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
        uint256 remainingTarget = fraction == WAD ? 0 : mm.mulWadUp(WAD - fraction).mulWadUp(WAD + c.liquidationBuffer);
        uint256 afterBonus = e > bonus ? e - bonus : 0;
        return afterBonus > remainingTarget ? afterBonus - remainingTarget : 0;
    }

    function _coverDeficit(address account) internal {
        int256 cash = clearinghouse.cashOf(account);
        if (cash >= 0) return;
        uint256 deficit = uint256(-cash);
        uint256 tokenAmount = fund.release(account, deficit);
        uint256 covered = clearinghouse.enginePayIn(account, tokenAmount);
        emit BankruptcyCovered(account, deficit, covered);
    }

    // ============================================================================ Settlement

    /// @inheritdoc ILiquidationEngine
    function settle(address account, uint256[] calldata instrumentIds) external nonReentrant {
        uint256[] memory paid = new uint256[](instrumentIds.length);
        uint256 totalPaid;
        for (uint256 i; i < instrumentIds.length; ++i) {
            uint256 id = instrumentIds[i];
            Instrument memory inst = clearinghouse.instrument(id);
            if (inst.kind == InstrumentKind.Perpetual || inst.expiry > block.timestamp) {
                revert IClearinghouse.NotExpired(inst.expiry);
            }
            int256 size = clearinghouse.positionOf(account, id);
            if (size == 0) continue;
            uint256 price = clearinghouse.settlementPrices(inst.underlying, inst.expiry);
            if (price == 0) revert SettlementPriceMissing(inst.underlying, inst.expiry);
            // The first settlement of an instrument records its open interest: no short has
            // settled yet, so the shorts' total is the longs' total.
            if (settlementOpenInterest[id] == 0) settlementOpenInterest[id] = clearinghouse.shortOpenInterest(id);
            uint256 intrinsic = _intrinsic(inst, price);
            int256 payout;
            if (size < 0) {
                // Shorts pay rounded up, and always can settle: their loss stays in the waterfall.
                paid[i] = uint256(-size).mulWadUp(intrinsic);
                totalPaid += paid[i];
                payout = -int256(paid[i]);
            } else {
                payout = int256(_longPayout(id, uint256(size), intrinsic));
            }
            clearinghouse.engineSettle(account, id, payout);
        }
        if (totalPaid != 0) _requireNothingLeftToSettle(account);
        // A deficit is final only once the account holds nothing: an expired long it still holds
        // may yet be paid (its shorts settle later), so until then its negative cash waits.
        if (clearinghouse.openInstruments(account).length == 0 && clearinghouse.cashOf(account) < 0) {
            _absorbSettlementDeficit(account, instrumentIds, paid, totalPaid);
            // What neither the fund nor this expiry's winners can carry is bad debt: flagged,
            // gating withdrawals until the fund covers it (clearFlag).
            int256 left = clearinghouse.cashOf(account);
            if (left < 0) {
                _flag(account);
                emit BankruptcyFlagged(account, uint256(-left));
            }
        }
    }

    /// @dev A call that pays on a short leaves nothing of the account's expired legs behind but a
    ///      long still waiting for its own payers (priced, in the money, shorts outstanding):
    ///      every other leg, priced or not, goes in the same call (`PayerLegsSettleTogether`; an
    ///      unpriced one makes the payer wait for its price). A deficit is shared by the winners of
    ///      what was paid in the call that leaves the account flat, so a leg left behind would let
    ///      the caller pick who absorbs it.
    function _requireNothingLeftToSettle(address account) internal view {
        uint256[] memory open = clearinghouse.openInstruments(account);
        for (uint256 i; i < open.length; ++i) {
            uint256 id = open[i];
            Instrument memory inst = clearinghouse.instrument(id);
            if (inst.kind == InstrumentKind.Perpetual || inst.expiry > block.timestamp) continue;
            if (clearinghouse.positionOf(account, id) > 0) {
                uint256 price = clearinghouse.settlementPrices(inst.underlying, inst.expiry);
                if (price != 0 && _intrinsic(inst, price) != 0 && clearinghouse.shortOpenInterest(id) != 0) continue;
            }
            revert PayerLegsSettleTogether(id);
        }
    }

    function _intrinsic(Instrument memory inst, uint256 price) internal pure returns (uint256) {
        if (inst.kind == InstrumentKind.Call) return price > inst.strike ? price - inst.strike : 0;
        return inst.strike > price ? inst.strike - price : 0;
    }

    /// @dev A long is paid once every short of its instrument has settled (so the instrument's
    ///      shortfall is final), in full less its pro-rata share of that shortfall, rounded down.
    function _longPayout(uint256 id, uint256 size, uint256 intrinsic) internal returns (uint256 payout) {
        if (intrinsic == 0) return 0;
        uint256 shortsLeft = clearinghouse.shortOpenInterest(id);
        if (shortsLeft != 0) revert PayersNotSettled(id, shortsLeft);
        payout = size.mulWadDown(intrinsic);
        uint256 shortfall = settlementShortfall[id];
        if (shortfall == 0) return payout;
        uint256 cut = Math.mulDiv(shortfall, size, settlementOpenInterest[id], Math.Rounding.Ceil);
        if (cut > payout) cut = payout;
        uint256 outstanding = outstandingShortfall;
        outstandingShortfall = cut < outstanding ? outstanding - cut : 0;
        return payout - cut;
    }

    /// @dev An account that settlement left with no positions and negative cash: the fund pays
    ///      what it can; the rest, up to what the account paid in this call, is credited now and
    ///      recovered from the longs of the instruments it paid on (pro rata to what it paid on
    ///      each). Capping each instrument's share at what was paid on it keeps every shortfall
    ///      within its longs' payouts, so it is always recovered in full.
    function _absorbSettlementDeficit(address account, uint256[] calldata ids, uint256[] memory paid, uint256 totalPaid)
        internal
    {
        uint256 deficit = uint256(-clearinghouse.cashOf(account));
        uint256 covered = clearinghouse.enginePayIn(account, fund.release(account, deficit));
        uint256 shared;
        if (covered < deficit && totalPaid != 0) {
            shared = deficit - covered;
            if (shared > totalPaid) shared = totalPaid;
            uint256 left = shared;
            uint256 last;
            for (uint256 i; i < ids.length; ++i) {
                if (paid[i] != 0) last = i;
            }
            for (uint256 i; i <= last; ++i) {
                if (paid[i] == 0) continue;
                uint256 part = i == last ? left : Math.mulDiv(shared, paid[i], totalPaid);
                settlementShortfall[ids[i]] += part;
                left -= part;
            }
            outstandingShortfall += shared;
            clearinghouse.engineCreditSettlement(account, int256(shared));
        }
        emit SettlementDeficitAbsorbed(account, deficit, covered, shared);
    }

    // ============================================================================ Bankruptcy and ADL

    /// @inheritdoc ILiquidationEngine
    function flagBankruptcy(address account, MarginAttestation calldata att, bytes calldata sigs)
        external
        nonReentrant
    {
        int256 equity = _equityOf(account, att, sigs);
        if (equity >= 0) revert NotBankrupt(equity);
        uint256 deficit = uint256(-equity);
        uint256 available = fund.fundBalance();
        if (available >= deficit) revert FundCanCover(deficit, available);
        _flag(account);
        emit BankruptcyFlagged(account, deficit);
    }

    /// @inheritdoc ILiquidationEngine
    function clearFlag(address account, MarginAttestation calldata att, bytes calldata sigs) external nonReentrant {
        if (!clearinghouse.flagged(account)) revert NotFlagged(account);
        if (clearinghouse.openInstruments(account).length == 0) {
            // Plain cash: the fund pays a deficit it can cover now, or the flag stays.
            int256 cash = clearinghouse.cashOf(account);
            if (cash < 0 && uint256(-cash) > fund.fundBalance()) revert StillBankrupt(cash, fund.fundBalance());
            _coverDeficit(account);
            _unflag(account, clearinghouse.cashOf(account));
            return;
        }
        int256 equity = clearinghouse.verifyMarginAttestation(account, att, sigs);
        // No tolerance here: an attestation older than the newest data already seen (the one that
        // flagged the account, a heartbeat) could show a solvency that no longer holds.
        uint64 latest = clearinghouse.latestSnapshotTime();
        if (att.snapshotTime < latest) revert ClearingWithOlderSnapshot(att.snapshotTime, latest);
        // Still in deficit: a deficit the fund can cover is resolved by liquidating the account
        // whole through the fund (which clears the flag), never by a promise of the fund's
        // balance that several flags could count on at once.
        if (equity < 0) revert StillBankrupt(equity, fund.fundBalance());
        _unflag(account, equity);
    }

    /// @inheritdoc ILiquidationEngine
    function reportStall(address account, MarginAttestation calldata att, bytes calldata sigs) external nonReentrant {
        int256 equity = clearinghouse.verifyMarginAttestation(account, att, sigs);
        uint256 mm = att.maintenanceMargin;
        if (equity >= int256(mm)) revert NotLiquidatable(equity, mm);
        Stall storage st = stalls[account];
        // Dated by the snapshot, not the block: a hoarded attestation proves the account was below
        // MM when it was taken, never later. A report of the same state within STALL_REPORT_GAP of
        // the last confirmation continues the episode (the delay runs from its first report);
        // after a longer silence — the account may have been healthy meanwhile — one starts anew.
        uint64 t = att.snapshotTime;
        bool repeat = st.since != 0 && st.stateHash == att.stateHash;
        if (repeat && t <= st.confirmedAt) revert StaleStallReport(t, st.confirmedAt);
        bool continues = repeat && t <= uint256(st.confirmedAt) + 2 * BACKSTOP_DELAY;
        stalls[account] = Stall(att.stateHash, continues ? st.since : t, t, uint128(mm));
        emit StallReported(account, att.stateHash, mm);
    }

    /// @dev Cash plus the attested portfolio value; an account without positions needs no
    ///      attestation (its equity is its cash).
    function _equityOf(address account, MarginAttestation calldata att, bytes calldata sigs) internal returns (int256) {
        if (clearinghouse.openInstruments(account).length == 0) return clearinghouse.cashOf(account);
        return clearinghouse.verifyMarginAttestation(account, att, sigs);
    }

    /// @dev A counterparty charged nothing (its leaf was stale, or its equity already below zero)
    ///      may be left flat with the negative cash it already had: that is bad debt, so flag it.
    function _flagIfBadDebt(address account) internal {
        int256 cash = clearinghouse.cashOf(account);
        if (cash < 0 && clearinghouse.openInstruments(account).length == 0) {
            _flag(account);
            emit BankruptcyFlagged(account, uint256(-cash));
        }
    }

    /// @dev Withdrawals are gated if and only if some account is flagged.
    function _flag(address account) internal {
        clearinghouse.engineSetFlag(account, true);
    }

    function _unflag(address account, int256 equity) internal {
        clearinghouse.engineSetFlag(account, false);
        emit BankruptcyCleared(account, equity);
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
        uint256 charged; // haircut charged so far
        uint256 carry; // haircut that capped fills could not carry, moved down the queue
        address[] seen; // counterparties charged so far in this deleveraging ...
        uint256[] seenRoom; // ... and what each can still pay (its first fill moved its state hash)
        uint256 seenCount;
        uint256 last; // index in `seen` of the last fill's counterparty
    }

    /// @inheritdoc ILiquidationEngine
    function deleverage(AdlAttestation calldata att, bytes calldata sigs, AdlFill[] calldata fills)
        external
        nonReentrant
    {
        Plan memory plan = _checkAdl(att, sigs);
        plan.seen = new address[](fills.length);
        plan.seenRoom = new uint256[](fills.length);
        (uint256 deficit, uint256 contribution) = _fundContribution(att, plan);
        for (uint256 i; i < fills.length; ++i) {
            _deleverageOne(att, plan, fills[i]);
        }
        // What is left of the account at the plan's marks. A queue member that closed, flipped,
        // rotated its position away or changed its portfolio since the plan is skipped, so a
        // deleveraging may end partial: the rest stays with the account, flagged, for the next
        // plan — no one can make it revert (only a plan that moves nothing does).
        int256 equity = clearinghouse.cashOf(att.account);
        bool moved;
        bool complete = true;
        for (uint256 leg; leg < plan.remaining.length; ++leg) {
            int256 size = plan.sizes[leg];
            uint256 left = plan.remaining[leg];
            if (left != uint256(size > 0 ? size : -size)) moved = true;
            if (left == 0) continue;
            complete = false;
            equity += (size > 0 ? int256(left) : -int256(left)).mulWadFloor(att.marks[leg]);
        }
        if (!moved) revert AdlIncomplete(att.instrumentIds[0], plan.remaining[0]);
        // Per-fill rounding (and what capped fills carried down) can leave a whole deleveraging a
        // little short: the last counterparty pays it within its equity. Anything beyond — or the
        // part of a partial one that stayed with the account — is flagged until resolved.
        if (complete && equity < 0 && plan.seenCount != 0 && uint256(-equity) <= plan.seenRoom[plan.last]) {
            clearinghouse.engineMoveCash(plan.seen[plan.last], att.account, -equity);
            plan.charged += uint256(-equity);
            equity = 0;
        }
        uint256 uncovered = equity < 0 ? uint256(-equity) : 0;
        delete stalls[att.account];
        if (uncovered != 0) _flag(att.account);
        else if (clearinghouse.flagged(att.account)) _unflag(att.account, equity);
        emit DeleveragingCompleted(att.account, deficit, contribution, plan.charged, uncovered);
    }

    function _checkAdl(AdlAttestation calldata att, bytes calldata sigs) internal returns (Plan memory plan) {
        if (!clearinghouse.acceptsParamsVersion(att.paramsVersion)) {
            revert IClearinghouse.WrongParamsVersion(clearinghouse.riskConfig().paramsVersion, att.paramsVersion);
        }
        bytes32 current = clearinghouse.stateHashOf(att.account);
        if (att.stateHash != current) revert IClearinghouse.WrongPortfolioState(current, att.stateHash);
        clearinghouse.verifyOracleSignatures(AttestationHashing.hash(att), att.snapshotTime, att.deadline, sigs);

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
    ///      then pays everything it has and the rest becomes the counterparties' haircut. The
    ///      backstop is the exception: an account reported stalled below MM and left untouched
    ///      for BACKSTOP_DELAY is closed at the marks even when solvent (no haircut; the fund
    ///      pays a deficit it can cover).
    function _fundContribution(AdlAttestation calldata att, Plan memory plan)
        internal
        returns (uint256 deficit, uint256 contribution)
    {
        int256 equity = clearinghouse.cashOf(att.account);
        for (uint256 leg; leg < plan.sizes.length; ++leg) {
            equity += plan.sizes[leg].mulWadFloor(att.marks[leg]);
        }
        uint256 available = fund.fundBalance();
        if (equity >= 0 || uint256(-equity) <= available) {
            _requireBackstopDue(att, equity, available);
            if (equity < 0) {
                deficit = uint256(-equity);
                contribution = clearinghouse.enginePayIn(att.account, fund.release(att.account, deficit));
            }
            return (deficit, contribution); // plan.haircut stays 0
        }
        deficit = uint256(-equity);
        if (available != 0) {
            uint256 tokenAmount = fund.release(att.account, available);
            contribution = clearinghouse.enginePayIn(att.account, tokenAmount);
        }
        plan.haircut = deficit - contribution;
    }

    /// @dev The backstop applies to an account reported stalled (`reportStall`) at this very
    ///      portfolio state — no liquidation has touched it since — and confirmed below MM again
    ///      at least BACKSTOP_DELAY after the first report and at most BACKSTOP_DELAY ago (so the
    ///      MM it is held to is recent), and still below that MM at the plan's marks.
    function _requireBackstopDue(AdlAttestation calldata att, int256 equity, uint256 available) internal view {
        Stall memory st = stalls[att.account];
        if (st.since == 0 || st.stateHash != att.stateHash) {
            if (equity >= 0) revert NotBankrupt(equity);
            revert FundCanCover(uint256(-equity), available);
        }
        uint256 due = uint256(st.since) + BACKSTOP_DELAY;
        if (st.confirmedAt < due || block.timestamp > uint256(st.confirmedAt) + BACKSTOP_DELAY) {
            revert BackstopNotDue(due);
        }
        if (equity >= int256(uint256(st.maintenanceMargin))) revert NotLiquidatable(equity, st.maintenanceMargin);
    }

    function _deleverageOne(AdlAttestation calldata att, Plan memory plan, AdlFill calldata fill) internal {
        uint256 amount = _admit(att, plan, fill);
        if (amount == 0) return;
        _execute(plan, fill, att.instrumentIds[fill.leg], att.marks[fill.leg], amount);
    }

    /// @dev Checks the fill's place in its queue and returns what it deleverages (0 for a
    ///      counterparty that has since closed or flipped its opposite position).
    function _admit(AdlAttestation calldata att, Plan memory plan, AdlFill calldata fill)
        internal
        view
        returns (uint256 amount)
    {
        uint256 leg = fill.leg;
        if (leg >= plan.sizes.length) revert AdlLegsMismatch();
        if (fill.rank != plan.nextRank[leg]) revert AdlRankOutOfOrder(leg, plan.nextRank[leg], fill.rank);
        plan.nextRank[leg] = fill.rank + 1;
        if (plan.remaining[leg] == 0) revert AdlOvershoot(leg);
        uint256 id = att.instrumentIds[leg];
        bytes32 leaf = AttestationHashing.leaf(id, fill);
        if (!MerkleProof.verifyCalldata(fill.proof, att.queueRoots[leg], leaf)) revert AdlInvalidProof(leg, fill.rank);
        if (fill.counterparty == plan.account) return 0;
        // A member whose portfolio changed since the plan is skipped (its leaf's value no longer
        // describes it) — unless that change is its own fill on an earlier leg of this plan.
        if (
            _seenAt(plan, fill.counterparty) == plan.seenCount
                && clearinghouse.stateHashOf(fill.counterparty) != fill.stateHash
        ) {
            return 0;
        }
        int256 size = plan.sizes[leg];
        int256 theirs = clearinghouse.positionOf(fill.counterparty, id);
        if (theirs == 0 || (theirs > 0) == (size > 0)) return 0;
        amount = Math.min(plan.remaining[leg], uint256(theirs > 0 ? theirs : -theirs));
        plan.remaining[leg] -= amount;
    }

    /// @dev Moves `amount` of the bankrupt position to the counterparty at the bankruptcy price:
    ///      the mark, moved against the counterparty by its share of the haircut (spread over the
    ///      legs by notional, by size when every mark is zero) plus what capped fills before it
    ///      could not carry — never more than the counterparty's equity.
    function _execute(Plan memory plan, AdlFill calldata fill, uint256 id, uint256 mark, uint256 amount) internal {
        uint256 charge = _charge(plan, fill, mark, amount);
        int256 size = plan.sizes[fill.leg];
        int256 signedAmount = size > 0 ? int256(amount) : -int256(amount);
        int256 paid =
            size > 0 ? int256(amount.mulWadDown(mark) + charge) : int256(charge) - int256(amount.mulWadUp(mark));
        clearinghouse.engineMovePosition(plan.account, fill.counterparty, id, signedAmount);
        clearinghouse.engineMoveCash(fill.counterparty, plan.account, paid);
        if (charge == 0) _flagIfBadDebt(fill.counterparty);
        uint256 perContract = charge.divWadDown(amount);
        uint256 price = size > 0 ? mark + perContract : (mark > perContract ? mark - perContract : 0);
        emit Deleveraged(plan.account, fill.counterparty, id, signedAmount, price, fill.rank);
    }

    /// @dev The fill's share of the haircut plus the carry, capped at the counterparty's room.
    function _charge(Plan memory plan, AdlFill calldata fill, uint256 mark, uint256 amount)
        internal
        view
        returns (uint256 charge)
    {
        uint256 share = plan.gross != 0
            ? Math.mulDiv(amount.mulWadUp(mark), plan.haircut, plan.gross, Math.Rounding.Ceil)
            : Math.mulDiv(amount, plan.haircut, plan.totalSize, Math.Rounding.Ceil);
        // A counterparty on several legs: its first fill moved its state hash, so its room is
        // what its leaf allowed less what it was charged already in this deleveraging.
        uint256 k = _seenAt(plan, fill.counterparty);
        if (k == plan.seenCount) {
            plan.seen[k] = fill.counterparty;
            plan.seenRoom[k] = _room(fill);
            ++plan.seenCount;
        }
        uint256 room = plan.seenRoom[k];
        uint256 wanted = share + plan.carry;
        charge = wanted < room ? wanted : room;
        plan.carry = wanted - charge;
        plan.charged += charge;
        plan.seenRoom[k] = room - charge;
        plan.last = k;
    }

    /// @dev The counterparty's equity at the plan's marks: cash + the value its queue leaf
    ///      commits to (`_admit` has checked its portfolio is still the one that value describes).
    function _room(AdlFill calldata fill) internal view returns (uint256) {
        int256 equity = clearinghouse.cashOf(fill.counterparty) + fill.value;
        return equity > 0 ? uint256(equity) : 0;
    }

    /// @dev The counterparty's place in `plan.seen`, or `plan.seenCount` if it has no fill yet.
    function _seenAt(Plan memory plan, address counterparty) internal pure returns (uint256 k) {
        while (k < plan.seenCount && plan.seen[k] != counterparty) ++k;
    }

    /// @notice The EIP-712 struct hash of an ADL attestation (signed under the clearinghouse's domain).
    function hashAdlAttestation(AdlAttestation calldata att) external pure returns (bytes32) {
        return AttestationHashing.hash(att);
    }
}
