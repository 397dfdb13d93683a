// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {LiquidationFixture} from "../utils/LiquidationFixture.sol";
import {BadDebtHandler} from "./BadDebtHandler.sol";
import {PositionBook} from "../../../contracts/libraries/PositionBook.sol";

/// @notice Invariants of the bad-debt life cycle (see BadDebtHandler for what the campaign does).
/// @dev Grouped into four campaigns (forge runs one campaign per invariant function) so that the
///      default profile stays fast; each assertion names the property it checks.
contract BadDebtInvariants is LiquidationFixture {
    BadDebtHandler internal handler;

    function setUp() public {
        // one oracle signer: signature checking has its own suite; here it only costs time
        setUpLiquidation(1, 1);
        handler = new BadDebtHandler(ch, fundContract, engine, usdc, keysSlice(0, 1), owner, TIMELOCK, perpId);
        usdc.transferOwnership(address(handler));
        vm.prank(address(handler));
        usdc.acceptOwnership();
        handler.setUpMarket();
        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](16);
        selectors[0] = BadDebtHandler.trade.selector;
        selectors[1] = BadDebtHandler.padDust.selector;
        selectors[2] = BadDebtHandler.movePrice.selector;
        selectors[3] = BadDebtHandler.recoverPrice.selector;
        selectors[4] = BadDebtHandler.liquidate.selector;
        selectors[5] = BadDebtHandler.liquidateEmptyBook.selector;
        selectors[6] = BadDebtHandler.probeAll.selector;
        selectors[7] = BadDebtHandler.deleverage.selector;
        selectors[8] = BadDebtHandler.flag.selector;
        selectors[9] = BadDebtHandler.clearFlag.selector;
        selectors[10] = BadDebtHandler.settleExpiry.selector;
        selectors[11] = BadDebtHandler.fundInsurance.selector;
        selectors[12] = BadDebtHandler.depositFor.selector;
        selectors[13] = BadDebtHandler.withdraw.selector;
        selectors[14] = BadDebtHandler.govern.selector;
        selectors[15] = BadDebtHandler.passTime.selector;
        targetSelector(FuzzSelector(address(handler), selectors));
    }

    /// Conservation of funds (exact), the fund backed by tokens, Σ cash, and positions zero-sum.
    function invariant_accounting() public view {
        // every token the clearinghouse holds is someone's cash, a fee, or a settlement payout
        // not yet matched; net payouts are the gross ones plus the shortfall still to recover
        int256 held = int256(usdc.balanceOf(address(ch)) * 1e12);
        int256 nsp = ch.netSettlementPayouts();
        assertEq(held, ch.totalCash() + int256(ch.protocolFees()) - nsp, "custody == cash + fees - net payouts");
        int256 owed = handler.ghostGrossPayouts() + int256(engine.outstandingShortfall());
        assertLe(nsp, owed, "net payouts <= gross payouts + outstanding shortfall");
        assertLe(uint256(owed - nsp), handler.ghostShortfallCuts(), "... up to one wei per shortfall cut");
        assertEq(usdc.balanceOf(address(fundContract)) * 1e12, fundContract.fundBalance(), "fund backed by tokens");
        assertEq(fundContract.fundBalance(), handler.ghostFundIn() - handler.ghostFundOut(), "fund == in - out");
        int256 sum;
        for (uint256 i; i < handler.accountCount(); ++i) {
            sum += ch.cashOf(handler.accounts(i));
        }
        assertEq(sum, ch.totalCash(), "sum of cash");
        for (uint256 j; j < handler.instrumentCount(); ++j) {
            int256 net;
            uint256 id = handler.live(j);
            for (uint256 i; i < handler.accountCount(); ++i) {
                net += ch.positionOf(handler.accounts(i), id);
            }
            assertEq(net, 0, "positions sum to zero");
        }
        assertFalse(handler.settlementStuck(), "an expiry could not be settled");
    }

    /// Withdrawals are gated iff some account is flagged, and a flag never outlives its bad debt.
    function invariant_withdrawalGate() public view {
        uint256 flagged;
        for (uint256 i; i < handler.accountCount(); ++i) {
            if (ch.flagged(handler.accounts(i))) ++flagged;
        }
        assertEq(flagged, ch.flaggedCount(), "flaggedCount counts the flagged accounts");
        assertEq(ch.withdrawalsGated(), ch.flaggedCount() > 0, "withdrawalsGated == (flaggedCount > 0)");
        assertFalse(handler.resolvableFlagStuck(), "a flagged account within the fund's reach could not be cleared");
        assertFalse(handler.clearedWhileBeyondTheFund(), "a flag was cleared while the deficit was beyond the fund");
        assertFalse(handler.flaggedWithoutBadDebt(), "an account was flagged without bad debt beyond the fund");
        assertFalse(handler.bankruptcyNotFlaggable(), "bad debt beyond the fund could not be flagged");
        assertFalse(handler.withdrawnWhileGated(), "a withdrawal went through while gated");
    }

    /// No account holds negative cash without positions unless it is flagged.
    function invariant_noHiddenBadDebt() public view {
        for (uint256 i; i < handler.accountCount(); ++i) {
            address a = handler.accounts(i);
            if (ch.openInstruments(a).length != 0 || ch.flagged(a)) continue;
            assertGe(ch.cashOf(a), 0, "negative cash, no positions, not flagged");
        }
    }

    /// Liquidation and ADL keep their promises.
    function invariant_liquidationAndAdl() public view {
        assertFalse(
            handler.emptyBookRefused(), "an account below MM could not be liquidated by an empty-book liquidator"
        );
        assertFalse(handler.keeperRefused(), "an account below MM could not be liquidated by the keeper");
        assertFalse(handler.fundPaidBonus(), "the fund paid more than a deficit (a bonus)");
        assertFalse(handler.adlCounterpartyBelowZero(), "deleveraging left a counterparty below zero");
        assertFalse(handler.healthyLiquidated(), "a healthy account was liquidated");
        assertFalse(handler.targetMissed(), "a partial liquidation left the account below target");
        assertFalse(handler.adlWhileFundCouldCover(), "ADL ran while the fund could cover");
        assertFalse(handler.previousVersionRefused(), "an attestation of an accepted model version was refused");
        for (uint256 i; i < handler.accountCount(); ++i) {
            if (i == 9) continue; // the probe never keeps a position
            address a = handler.accounts(i);
            assertLe(ch.openInstruments(a).length, PositionBook.MAX_POSITIONS, "storage bound");
        }
    }
}
