// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {LiquidationFixture} from "../utils/LiquidationFixture.sol";
import {ILiquidationEngine} from "../../../contracts/interfaces/ILiquidationEngine.sol";
import {InstrumentKind, SettlementPrice} from "../../../contracts/interfaces/IClearinghouse.sol";

/// @notice A payer's deficit is shared by the winners of what it paid in the call that ends its
///         settlement. Attack: settle its in-the-money leg alone while another expired leg keeps
///         it "not done" — an out-of-the-money short, or a short on an underlying whose price is
///         not posted yet — so that leg's longs are paid in full and the deficit later lands on
///         the fund, other winners, or a flag. Every expired short of a payer settles in one call.
contract SettlementSplitByOtherLegTest is LiquidationFixture {
    event log_named_int(string key, int256 val);

    address internal erin;
    bytes32 internal constant BTC = "BTC";
    uint256 internal btcCall;

    function setUp() public {
        setUpLiquidation(3, 2);
        erin = vm.addr(0xE41);
        vm.prank(owner);
        btcCall = ch.listInstrument(BTC, InstrumentKind.Call, 50_000e18, expiry);
        fund(alice, 10_000);
        fund(erin, 10_000);
        fund(carol, 300);
    }

    function ids1(uint256 id) internal pure returns (uint256[] memory ids) {
        ids = new uint256[](1);
        ids[0] = id;
    }

    function ids2(uint256 a, uint256 b) internal pure returns (uint256[] memory ids) {
        ids = new uint256[](2);
        ids[0] = a;
        ids[1] = b;
    }

    function post(bytes32 u, uint256 price) internal {
        SettlementPrice memory sp = SettlementPrice({underlying: u, expiry: expiry, price: price, snapshotTime: expiry});
        ch.postSettlementPrice(sp, oracleSignPrice(sp));
    }

    function gain(address who, uint256 id) internal returns (int256) {
        int256 before = ch.cashOf(who);
        engine.settle(who, ids1(id));
        return ch.cashOf(who) - before;
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

    /// carol: short ETH call (to alice, pays 1,000) + long BTC call (from erin, receives 1,000 once
    /// erin has paid). Her deficit is covered when her last short settles; her long's payout then
    /// repays the fund what it lent, never carol.
    function test_pendingLongPayoutRepaysTheFund() public {
        seedFund(1_000);
        fill(order(carol, callId, -1e18, 100e18, 1), carolKey, alice, 1e18, quote(-100e18, 0, 100e18, 0));
        fill(order(erin, btcCall, -1e18, 100e18, 2), 0xE41, carol, 1e18, quote(-100e18, 0, 100e18, 0));
        vm.warp(expiry + 1);
        post(ETH, 4_000e18);
        post(BTC, 51_000e18);
        uint256 fundBefore = fundContract.fundBalance();
        engine.settle(carol, ids1(callId)); // cash 300 - 1,000: the fund lends 700, her long stays
        uint256 lent = engine.settlementDebt(carol);
        assertGt(lent, 0, "deficit lent against the pending long");
        assertEq(ch.cashOf(carol), 0, "deficit covered");
        assertEq(gain(alice, callId), 1_000e18, "alice paid in full by the fund");

        engine.settle(erin, ids1(btcCall));
        int256 carolGot = gain(carol, btcCall);
        assertEq(engine.settlementDebt(carol), 0, "debt repaid");
        assertEq(fundContract.fundBalance(), fundBefore, "the fund got back all it lent");
        assertEq(carolGot, 1_000e18 - int256(lent), "carol keeps only what exceeds her debt");
        assertFalse(ch.withdrawalsGated(), "gated");
    }

    /// Any deposit, fund and payout: carol ends with exactly her net settlement (never below zero),
    /// the fund gets back what it lent up to her payout, and nothing is flagged.
    function testFuzz_lentDeficitIsRepaidFromPayouts(uint256 deposit, uint256 fundSeed, uint256 btcPrice) public {
        deposit = bound(deposit, 0, 2_000);
        fundSeed = bound(fundSeed, 0, 2_000);
        if (fundSeed != 0) seedFund(fundSeed);
        btcPrice = bound(btcPrice, 49_000, 53_000) * 1e18;
        if (deposit != 0) fund(carol, deposit); // on top of setUp's 300
        fill(order(carol, callId, -1e18, 100e18, 1), carolKey, alice, 1e18, quote(-100e18, 0, 100e18, 0));
        fill(order(erin, btcCall, -1e18, 100e18, 2), 0xE41, carol, 1e18, quote(-100e18, 0, 100e18, 0));
        vm.warp(expiry + 1);
        post(ETH, 4_000e18);
        post(BTC, btcPrice);
        int256 net = ch.cashOf(carol) - 1_000e18 + int256(btcPrice > 50_000e18 ? btcPrice - 50_000e18 : 0);
        uint256 f0 = fundContract.fundBalance();

        engine.settle(carol, ids1(callId));
        uint256 lent = engine.settlementDebt(carol);
        uint256 fromFund = f0 - fundContract.fundBalance();
        assertLe(fromFund, lent, "the fund lent no more than the debt");
        engine.settle(erin, ids1(btcCall));
        engine.settle(carol, ids1(btcCall));
        gain(alice, callId);

        assertEq(ch.cashOf(carol), net > 0 ? net : int256(0), "carol keeps exactly her net settlement");
        uint256 payout = btcPrice > 50_000e18 ? btcPrice - 50_000e18 : 0;
        assertEq(fundContract.fundBalance(), f0 - fromFund + (payout < lent ? payout : lent), "fund repaid up to the payout");
        assertEq(engine.settlementDebt(carol), payout < lent ? lent - payout : 0, "debt left");
        assertFalse(ch.withdrawalsGated(), "gated");
        assertEq(int256(usdc.balanceOf(address(ch)) * 1e12), ch.totalCash() + int256(ch.protocolFees()) - ch.netSettlementPayouts(), "custody");
    }
}
