// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {SettlementFixture} from "../utils/SettlementFixture.sol";
import {InstrumentKind} from "../../../contracts/interfaces/IClearinghouse.sol";
import {ILiquidationEngine} from "../../../contracts/interfaces/ILiquidationEngine.sol";

/// @notice carol (deposit 300) sold one ETH 3,000 call to alice at 100 and bought one BTC 60,000
///         call from erin at 10 (same expiry). ETH settles at 4,000 and is posted first; BTC's price
///         comes later (50,000: her long is worthless). She owes 1,000 and has 390: 610 short, fund
///         empty. Settled together, alice carries the 610. Attack: alice settles carol's ETH short
///         while BTC is still unpriced, so carol is not flat, alice is paid 1,000 in full, and once
///         BTC posts carol is flat at -610 with nothing paid in that call to share it: flagged.
///         A payer waits for the price of every expired leg it holds, longs included.
contract UnpricedLongLeftBehindTest is SettlementFixture {
    uint256 internal btcCall;

    function setUp() public {
        setUpSettlement();
        btcCall = listOption(BTC, InstrumentKind.Call, 60_000e18);
        fill(order(carol, callId, -1e18, 100e18, 1), carolKey, alice, 1e18, quote(-100e18, 0, 100e18, 0));
        fill(order(carol, btcCall, 1e18, 10e18, 2), carolKey, erin, 1e18, quote(0, 0, -10e18, 0));
        vm.warp(expiry + 1);
        post(ETH, 4_000e18);
    }

    function test_reference_settledTogether() public {
        post(BTC, 50_000e18);
        engine.settle(carol, ids2(callId, btcCall));
        assertEq(gain(alice, callId), 390e18, "fair");
        assertFalse(ch.withdrawalsGated(), "no gate");
    }

    /// Property: settling a payer before one of its longs is priced must not move its deficit
    /// off the winners of what it paid onto a flag (or the fund).
    function test_payerCannotBeSettledAheadOfAnUnpricedLong() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.PayerLegsSettleTogether.selector, btcCall));
        engine.settle(carol, ids1(callId));
        vm.expectRevert(); // PayersNotSettled: alice waits for carol
        engine.settle(alice, ids1(callId));

        post(BTC, 50_000e18);
        engine.settle(carol, ids2(callId, btcCall));
        assertLe(gain(alice, callId), 390e18, "alice paid in full; carol's 610 moved off her");
        assertFalse(ch.withdrawalsGated(), "deficit flagged: withdrawals gated for everyone");
    }
}
