// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {LiquidationFixture} from "../utils/LiquidationFixture.sol";
import {IClearinghouse, InstrumentKind, SettlementPrice} from "../../../contracts/interfaces/IClearinghouse.sol";
import {ILiquidationEngine} from "../../../contracts/interfaces/ILiquidationEngine.sol";

/// @notice A short option holder who cannot pay at settlement: the insurance fund pays what it
///         can and the rest is taken pro rata from that instrument's longs' payouts, so no
///         settlement leaves an account with negative cash and no positions.
/// @dev The 3,000 calls: alice long 3 (2 from bob, 1 from carol), erin long 1 (from carol), all
///      at a premium of 100. Carol (deposit 300) is short 2: cash 500. ETH settles at 4,000: the
///      calls pay 1,000 each, carol owes 2,000 and is 1,500 short.
contract SettlementDeficitTest is LiquidationFixture {
    uint256 internal constant SETTLE = 4_000e18;
    address internal erin;
    address internal frank;

    function setUp() public {
        setUpLiquidation(3, 2);
        erin = vm.addr(0xE41);
        frank = vm.addr(0xF4A);
        fund(alice, 10_000);
        fund(bob, 100_000);
        fund(carol, 300);
        fund(erin, 10_000);
        fill(order(bob, callId, -2e18, 100e18, 1), bobKey, alice, 2e18, quote(-200e18, 1_200e18, 200e18, 0));
        fill(order(carol, callId, -1e18, 100e18, 1), carolKey, alice, 1e18, quote(-100e18, 200e18, 300e18, 0));
        fill(order(carol, callId, -1e18, 100e18, 2), carolKey, erin, 1e18, quote(-200e18, 300e18, 100e18, 0));
    }

    function postPrice(uint256 p) internal {
        vm.warp(expiry + 1);
        SettlementPrice memory sp = SettlementPrice({underlying: ETH, expiry: expiry, price: p, snapshotTime: expiry});
        ch.postSettlementPrice(sp, oracleSignPrice(sp));
    }

    /// @dev Custody of the clearinghouse, exactly: every token it holds is someone's cash, a
    ///      protocol fee, or a settlement payout still to be matched; and the net payouts are the
    ///      gross ones (shorts' payments, longs' intrinsic value) plus the shortfall credited to
    ///      payers but not yet recovered from longs.
    function assertCustody(int256 grossPayouts) internal view {
        assertEq(
            int256(usdc.balanceOf(address(ch)) * 1e12),
            ch.totalCash() + int256(ch.protocolFees()) - ch.netSettlementPayouts(),
            "custody: tokens == cash + fees - net settlement payouts"
        );
        assertEq(
            ch.netSettlementPayouts(),
            grossPayouts + int256(engine.outstandingShortfall()),
            "net payouts == gross + outstanding"
        );
        assertEq(usdc.balanceOf(address(fundContract)) * 1e12, fundContract.fundBalance(), "fund custody");
    }

    /// @dev No account is left with negative cash and no positions while withdrawals go on as if
    ///      nothing were owed (bad debt is either paid, shared, or gating withdrawals).
    function assertNoNegativeCashWithoutPositions(address a) internal view {
        if (ch.openInstruments(a).length != 0 || ch.withdrawalsGated()) return;
        assertGe(ch.cashOf(a), 0, "negative cash, no positions and withdrawals open");
    }

    /// Guards: the fund pays what it can, the rest comes pro rata out of the longs' payouts.
    function test_fundPaysWhatItCanAndLongsShareTheRest() public {
        seedFund(600);
        postPrice(SETTLE);
        vm.expectEmit(address(engine));
        emit ILiquidationEngine.SettlementDeficitAbsorbed(carol, 1_500e18, 600e18, 900e18);
        engine.settle(carol, ids1(callId));
        assertEq(ch.cashOf(carol), 0, "carol: fund 600 + shortfall 900 credited");
        assertEq(engine.settlementShortfall(callId), 900e18, "shortfall of the calls");
        assertEq(engine.settlementOpenInterest(callId), 4e18, "the longs' total");
        assertEq(fundContract.fundBalance(), 0, "fund paid all it had");
        engine.settle(bob, ids1(callId));
        int256 aliceBefore = ch.cashOf(alice);
        int256 erinBefore = ch.cashOf(erin);
        engine.settle(alice, ids1(callId));
        engine.settle(erin, ids1(callId));
        assertEq(ch.cashOf(alice) - aliceBefore, 3_000e18 - 675e18, "alice: 3,000 less 3/4 of 900");
        assertEq(ch.cashOf(erin) - erinBefore, 1_000e18 - 225e18, "erin: 1,000 less 1/4 of 900");
        assertEq(engine.outstandingShortfall(), 0, "recovered in full");
        assertEq(ch.netSettlementPayouts(), 0, "zero-sum once everyone settled");
        address[4] memory all = [alice, bob, carol, erin];
        for (uint256 i; i < 4; ++i) {
            assertNoNegativeCashWithoutPositions(all[i]);
        }
        assertCustody(0);
    }

    /// Guards: longs cannot be paid before every short of the instrument has settled.
    function test_longsCannotSettleBeforeThePayers() public {
        postPrice(SETTLE);
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.PayersNotSettled.selector, callId, 4e18));
        engine.settle(alice, ids1(callId));
        engine.settle(carol, ids1(callId));
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.PayersNotSettled.selector, callId, 2e18));
        engine.settle(erin, ids1(callId));
        engine.settle(bob, ids1(callId));
        engine.settle(erin, ids1(callId)); // now it can
        assertEq(ch.openInstruments(erin).length, 0, "erin settled");
    }

    /// Guards: custody == cash + fees − net payouts and net payouts == gross + outstanding, at every step.
    function test_custodyIdentityHoldsAtEveryStep() public {
        seedFund(600);
        postPrice(SETTLE);
        assertCustody(0);
        engine.settle(carol, ids1(callId));
        assertEq(engine.outstandingShortfall(), 900e18, "credited to carol, not yet recovered");
        assertCustody(-2_000e18);
        engine.settle(bob, ids1(callId));
        assertCustody(-4_000e18);
        engine.settle(alice, ids1(callId));
        assertEq(engine.outstandingShortfall(), 225e18, "erin's part still to come");
        assertCustody(-1_000e18);
        engine.settle(erin, ids1(callId));
        assertCustody(0);
    }

    /// Guards: a fund large enough pays the whole deficit and the longs are paid in full.
    function test_fundLargeEnoughLeavesLongsWhole() public {
        seedFund(5_000);
        postPrice(SETTLE);
        vm.expectEmit(address(engine));
        emit ILiquidationEngine.SettlementDeficitAbsorbed(carol, 1_500e18, 1_500e18, 0);
        engine.settle(carol, ids1(callId));
        engine.settle(bob, ids1(callId));
        int256 before = ch.cashOf(alice);
        engine.settle(alice, ids1(callId));
        assertEq(ch.cashOf(alice) - before, 3_000e18, "paid in full");
        assertEq(fundContract.fundBalance(), 3_500e18, "fund paid exactly the deficit");
        assertCustody(-1_000e18);
    }

    /// Guards: a payer's legs cannot be settled one call at a time, and its deficit is not left unflagged.
    function test_splitSettlementDoesNotLetTheDeficitEscape() public {
        // carol also bought one 3,000 put from bob (worthless at 4,000): cash 450
        fill(order(bob, putId, -1e18, 50e18, 3), bobKey, carol, 1e18, quote(-50e18, 0, -150e18, 250e18));
        seedFund(600);
        postPrice(SETTLE);
        // the call alone is refused: her put's payout is known (nothing), so it settles with it
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.PayerLegsSettleTogether.selector, putId));
        engine.settle(carol, ids1(callId));
        engine.settle(carol, ids2(callId, putId));
        assertGe(ch.cashOf(carol), 0, "her deficit absorbed when the call leaves her flat");
        // bob is short the call and the put: every expired short of a payer settles together
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.PayerLegsSettleTogether.selector, putId));
        engine.settle(bob, ids1(callId));
        engine.settle(bob, ids2(callId, putId));
        engine.settle(alice, ids1(callId));
        engine.settle(erin, ids1(callId));
        assertEq(ch.openInstruments(carol).length, 0, "carol has no positions");
        assertNoNegativeCashWithoutPositions(carol);
    }

    /// Guards: a long-only holder bankrupt at expiry is not left with unflagged negative cash.
    function test_bankruptLongHolderDoesNotEndNegativeWithoutPositions() public {
        fund(frank, 100);
        // frank buys 2 calls at 150 on credit: cash 100 − 300 − 0.15 fee
        fill(order(bob, callId, -2e18, 150e18, 4), bobKey, frank, 2e18, quote(-300e18, 0, 300e18, 60e18));
        seedFund(100);
        postPrice(2_500e18); // the calls expire worthless
        engine.settle(frank, ids1(callId));
        assertEq(ch.openInstruments(frank).length, 0, "frank has no positions");
        assertNoNegativeCashWithoutPositions(frank);
    }

    /// Guards: a deficit beyond the sharing longs' payouts is not credited away into an unrecoverable shortfall.
    function test_deficitBeyondTheSharingLongsPayoutsIsNotHidden() public {
        vm.prank(owner);
        uint256 highCall = ch.listInstrument(ETH, InstrumentKind.Call, 3_900e18, expiry);
        // carol also sells one 3,900 call to bob at 10: cash 510
        fill(order(carol, highCall, -1e18, 10e18, 3), carolKey, bob, 1e18, quote(-300e18, 0, 0, 0));
        postPrice(SETTLE); // 3,000 calls pay 1,000; the 3,900 call pays 100
        // one leg alone is refused: a payer settles all its in-the-money shorts together
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.PayerLegsSettleTogether.selector, highCall));
        engine.settle(carol, ids1(callId));
        uint256[] memory both = new uint256[](2);
        (both[0], both[1]) = (callId, highCall);
        engine.settle(carol, both); // carol pays 2,100: −1,590, shared pro rata, capped at what she paid
        // bob pays on the 3,000 call and collects on the 3,900 call in one call (its payout is
        // known); his payout (100) is all that can be taken back there
        engine.settle(bob, ids2(callId, highCall));
        engine.settle(alice, ids1(callId));
        engine.settle(erin, ids1(callId));
        address[4] memory all = [alice, bob, carol, erin];
        for (uint256 i; i < 4; ++i) {
            assertEq(ch.openInstruments(all[i]).length, 0, "everyone settled");
        }
        assertLe(ch.netSettlementPayouts(), 0, "settlement paid out more than it took in");
        assertEq(engine.outstandingShortfall(), 0, "a shortfall nobody will ever repay");
    }
}
