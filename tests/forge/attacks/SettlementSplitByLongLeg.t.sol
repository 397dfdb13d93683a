// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {SettlementFixture} from "../utils/SettlementFixture.sol";
import {InstrumentKind} from "../../../contracts/interfaces/IClearinghouse.sol";
import {ILiquidationEngine} from "../../../contracts/interfaces/ILiquidationEngine.sol";

/// @notice Carol (deposit 300) holds a call spread: short one 3,000 call (sold to alice at 100) and
///         long one 5,000 call (bought from erin at 10). ETH settles at 4,000: she owes 1,000 and
///         has 390, so she is 610 short; the fund is empty. Settled in one call, the 610 is taken
///         from alice's payout (she gets 390) and nothing is flagged. Attack: alice
///         settles carol's short alone while her worthless expired long keeps her "not flat": no
///         absorption, alice paid 1,000 in full, and when the 5,000 call settles (payout 0) carol
///         is flat with -610 and nothing to share it with — flagged, withdrawals gated. A payer's
///         call must take every expired long whose payout is already known as well.
contract SettlementSplitByLongLegTest is SettlementFixture {
    uint256 internal call5000;

    function setUp() public {
        setUpSettlement();
        call5000 = listOption(ETH, InstrumentKind.Call, 5_000e18);
        // carol sells the 3,000 call to alice at 100 and buys the 5,000 call from erin at 10
        fill(order(carol, callId, -1e18, 100e18, 1), carolKey, alice, 1e18, quote(-100e18, 0, 100e18, 0));
        fill(order(carol, call5000, 1e18, 10e18, 2), carolKey, erin, 1e18, quote(-90e18, 0, -10e18, 0));
        vm.warp(expiry + 1);
        post(ETH, 4_000e18);
    }

    function test_reference_oneCall() public {
        engine.settle(carol, ids2(callId, call5000));
        assertEq(gain(alice, callId), 390e18, "alice absorbs carol's 610");
        assertFalse(ch.withdrawalsGated(), "no gate");
    }

    /// Property: a third party cannot choose, by splitting a payer's legs, that the winners of the
    /// instrument it paid on are paid in full while its deficit lands on a flag (or the fund).
    function test_shortLegCannotBeSettledApartFromAnExpiredLong() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.PayerLegsSettleTogether.selector, call5000));
        engine.settle(carol, ids1(callId));
        engine.settle(carol, ids2(callId, call5000));
        assertLe(gain(alice, callId), 390e18, "alice was paid more than her share of carol's deficit");
        assertFalse(ch.withdrawalsGated(), "split settlement froze withdrawals");
    }
}
