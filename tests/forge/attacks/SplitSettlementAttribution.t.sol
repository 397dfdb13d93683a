// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {SettlementFixture} from "../utils/SettlementFixture.sol";
import {ILiquidationEngine} from "../../../contracts/interfaces/ILiquidationEngine.sol";
import {InstrumentKind} from "../../../contracts/interfaces/IClearinghouse.sol";

/// @notice Carol (deposit 300) is short one 3,000 call (sold to alice) and one 3,500 call (sold to
///         erin), both at 100. ETH settles at 4,000: she owes 1,000 + 500 and is 1,000 short. Settled in
///         one call, the 1,000 is shared pro rata to what she paid (2/3 on the 3,000 call, 1/3 on the
///         3,500 call). Anyone may instead settle her legs one call at a time, choosing who eats the loss:
///         settling the 3,000 call alone first lets its longs (alice) be paid in full; the 3,500 call's
///         longs (erin) then absorb up to their whole payout, and the rest is flagged, gating all
///         withdrawals with an empty fund.
contract SplitSettlementAttributionTest is SettlementFixture {
    uint256 internal call3500;

    function setUp() public {
        setUpSettlement();
        call3500 = listOption(ETH, InstrumentKind.Call, 3_500e18);
        fill(order(carol, callId, -1e18, 100e18, 1), carolKey, alice, 1e18, quote(-100e18, 0, 100e18, 0));
        fill(order(carol, call3500, -1e18, 100e18, 2), carolKey, erin, 1e18, quote(-100e18, 0, 100e18, 0));
        vm.warp(expiry + 1);
        post(ETH, 4_000e18);
    }

    function _settleLongs() internal returns (int256 aliceGot, int256 erinGot) {
        return (gain(alice, callId), gain(erin, call3500));
    }

    /// Reference: one call, the deficit is shared pro rata to what was paid on each instrument.
    function test_reference_oneCall() public {
        engine.settle(carol, ids2(callId, call3500));
        (int256 aliceGot, int256 erinGot) = _settleLongs();
        emit log_named_int("alice (fair)", aliceGot);
        emit log_named_int("erin (fair)", erinGot);
        assertFalse(ch.withdrawalsGated(), "no gate");
    }

    /// Attack (blocked): alice (or anyone) settles carol's 3,000 call alone first; a payer's
    /// in-the-money legs settle together (PayerLegsSettleTogether), so the split is refused and
    /// the settlement proceeds as in the reference.
    function test_payerLegsCannotBeSettledOneByOne() public {
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.PayerLegsSettleTogether.selector, call3500));
        engine.settle(carol, ids1(callId));
        engine.settle(carol, ids2(callId, call3500));
        (int256 aliceGot, int256 erinGot) = _settleLongs();
        emit log_named_int("alice (attack)", aliceGot);
        emit log_named_int("erin (attack)", erinGot);
        emit log_named_int("carol cash left flagged", ch.cashOf(carol));
        // Property: the attribution does not depend on how a third party splits the calls.
        assertLe(aliceGot, 333_333_333_333_333_333_334, "alice paid more than her fair share");
        assertFalse(ch.withdrawalsGated(), "split settlement froze withdrawals");
    }
}
