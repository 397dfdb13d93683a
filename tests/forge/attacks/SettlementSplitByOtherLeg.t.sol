// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {SettlementFixture} from "../utils/SettlementFixture.sol";
import {ILiquidationEngine} from "../../../contracts/interfaces/ILiquidationEngine.sol";
import {InstrumentKind} from "../../../contracts/interfaces/IClearinghouse.sol";

/// @notice A payer's deficit is shared by the winners of what it paid in the call that ends its
///         settlement. Attack: settle its in-the-money leg alone while another expired leg keeps
///         it "not done" — an out-of-the-money short, or a short on an underlying whose price is
///         not posted yet — so that leg's longs are paid in full and the deficit later lands on
///         the fund, other winners, or a flag. Every expired short of a payer settles in one call.
contract SettlementSplitByOtherLegTest is SettlementFixture {
    uint256 internal btcCall;

    function setUp() public {
        setUpSettlement();
        btcCall = listOption(BTC, InstrumentKind.Call, 50_000e18);
    }

    /// carol (cash 500): short 1 ETH 3,000 call to alice and 1 ETH 3,000 put to erin; ETH settles
    /// at 4,000: the call pays 1,000, the put nothing. The out-of-the-money put must come along.
    function test_outOfTheMoneyShortCannotBeLeftBehind() public {
        fill(order(carol, callId, -1e18, 100e18, 1), carolKey, alice, 1e18, quote(-100e18, 0, 100e18, 0));
        fill(order(carol, putId, -1e18, 100e18, 2), carolKey, erin, 1e18, quote(-100e18, 0, 100e18, 0));
        vm.warp(expiry + 1);
        post(ETH, 4_000e18);
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.PayerLegsSettleTogether.selector, putId));
        engine.settle(carol, ids1(callId));

        engine.settle(carol, ids2(callId, putId));
        int256 aliceGot = gain(alice, callId);
        emit log_named_int("alice paid", aliceGot);
        // 1,000 owed, 500 paid by carol, the empty fund pays nothing: alice carries the other 500
        assertEq(aliceGot, 500e18, "alice carries exactly carol's shortfall");
        assertEq(ch.cashOf(carol), 0, "carol ends at zero, not in flagged debt");
        assertFalse(ch.withdrawalsGated(), "settlement froze withdrawals");
        assertEq(engine.outstandingShortfall(), 0, "shortfall fully recovered");
    }

    /// carol: short ETH call (to alice) + short BTC call (to erin); ETH's price is posted first.
    /// Her ETH leg waits for BTC's price, then both settle together and the loss is shared.
    function test_shortOnUnpostedUnderlyingHoldsThePayer() public {
        fill(order(carol, callId, -1e18, 100e18, 1), carolKey, alice, 1e18, quote(-100e18, 0, 100e18, 0));
        fill(order(carol, btcCall, -1e18, 100e18, 2), carolKey, erin, 1e18, quote(-100e18, 0, 100e18, 0));
        vm.warp(expiry + 1);
        post(ETH, 4_000e18);
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.SettlementPriceMissing.selector, BTC, expiry));
        engine.settle(carol, ids2(callId, btcCall));
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.PayerLegsSettleTogether.selector, btcCall));
        engine.settle(carol, ids1(callId));
        vm.expectRevert(); // PayersNotSettled: alice waits
        engine.settle(alice, ids1(callId));

        post(BTC, 51_000e18); // the BTC call also pays 1,000
        engine.settle(carol, ids2(callId, btcCall));
        int256 aliceGot = gain(alice, callId);
        int256 erinGot = gain(erin, btcCall);
        emit log_named_int("alice got", aliceGot);
        emit log_named_int("erin got", erinGot);
        assertEq(aliceGot, erinGot, "who absorbs the deficit depends on posting order");
        assertEq(aliceGot, 250e18, "each winner carries half of carol's 1,500 shortfall");
        assertFalse(ch.withdrawalsGated(), "settlement froze withdrawals");
    }

    /// A long still waiting for its own payers may stay behind (or two payers holding each
    /// other's longs would deadlock): carol's deficit then waits for that long's payout.
    function test_aLongWaitingForItsPayersMayStay() public {
        fill(order(carol, callId, -1e18, 100e18, 1), carolKey, alice, 1e18, quote(-100e18, 0, 100e18, 0));
        fill(order(erin, btcCall, -1e18, 100e18, 2), ERIN_KEY, carol, 1e18, quote(-100e18, 0, 100e18, 0));
        vm.warp(expiry + 1);
        post(ETH, 4_000e18);
        post(BTC, 50_500e18); // carol: pays 1,000 on ETH, receives 500 on BTC once erin has paid
        engine.settle(carol, ids1(callId)); // erin has not paid yet: the BTC long stays
        assertEq(ch.positionOf(carol, btcCall), 1e18, "the pending long stays");
        assertEq(ch.cashOf(carol), -700.05e18, "her deficit (and her taker fee) waits for it");
        assertFalse(ch.withdrawalsGated(), "nothing flagged while a payout may come");
        engine.settle(erin, ids1(btcCall));
        engine.settle(carol, ids1(btcCall));
        // her long covered 500; what is left was found only now, with no payment to share it:
        // the fund's, here flagged until the fund covers it
        assertEq(ch.cashOf(carol), -200.05e18);
        assertTrue(ch.flagged(carol) && ch.withdrawalsGated(), "bad debt beyond the fund is flagged");
        seedFund(201);
        engine.clearFlag(carol, attestation(carol, 0, 0, 0), "");
        assertFalse(ch.withdrawalsGated(), "cleared once the fund pays");
        assertEq(ch.cashOf(carol), 0);
    }
}
