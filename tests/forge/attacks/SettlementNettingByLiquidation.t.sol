// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {SettlementFixture} from "../utils/SettlementFixture.sol";
import {MarginAttestation} from "../../../contracts/interfaces/IClearinghouse.sol";
import {IClearinghouse} from "../../../contracts/interfaces/IClearinghouse.sol";
import {LiquidationRequest} from "../../../contracts/interfaces/ILiquidationEngine.sol";

/// @notice Attack (blocked: expired positions never move, InstrumentExpired). After settlement of an expired call has started (a defaulting short's deficit was
///         credited and booked as settlementShortfall against the instrument's longs), a long
///         holder (keeper) liquidates a thin short of the SAME expired instrument. The slice nets
///         against its long: shortOpenInterest falls to 0 without any settlement, the keeper's long
///         vanishes without ever paying its pro-rata cut, and the cut it should have paid is never
///         recovered: settlement creates money (outstandingShortfall stuck > 0).
contract SettlementNettingByLiquidationTest is SettlementFixture {
    uint256 internal constant SETTLE = 4_000e18; // calls (strike 3,000) pay 1,000 each
    event log_named_uint(string key, uint256 val);

    function setUp() public {
        setUpLiquidation(3, 2);
        fund(alice, 10_000);
        fund(keeper, 10_000);
        fund(carol, 300); // carol: the defaulting payer
        fund(bob, 1_805); // bob: a thin short (could be keeper's own sock)
        // carol sells 2 calls to alice at 100; bob sells 2 calls to keeper at 100
        fill(order(carol, callId, -2e18, 100e18, 1), carolKey, alice, 2e18, quote(-200e18, 200e18, 200e18, 0));
        fill(order(bob, callId, -2e18, 100e18, 1), bobKey, keeper, 2e18, quote(-200e18, 200e18, 200e18, 0));
    }

    function test_expiredPositionsCannotBeNettedAwayByALiquidation() public {
        vm.warp(expiry + 1);
        post(ETH, SETTLE);

        // 1. carol settles: owes 2,000, has 500 -> 1,500 shortfall booked against the 4 long calls
        engine.settle(carol, ids1(callId));
        assertEq(engine.settlementShortfall(callId), 1_500e18);
        assertEq(engine.settlementOpenInterest(callId), 4e18);

        // 2. bob (cash 2,005, value -2,000 => equity 5 < MM 10) is liquidated whole by keeper, who is long
        //    the same expired call: bob's -2 nets keeper's +2.
        LiquidationRequest[] memory reqs = new LiquidationRequest[](1);
        reqs[0] = request(bob, -2_000e18, 10e18);
        (MarginAttestation memory katt, bytes memory ksigs) = keeperNow(2_000e18, 0);
        vm.prank(keeper);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.InstrumentExpired.selector, callId));
        engine.liquidate(reqs, katt, ksigs);
        // bob is settled instead (a payer always can), then everyone else
        engine.settle(bob, ids1(callId));
        int256 keeperBefore = ch.cashOf(keeper);
        engine.settle(keeper, ids1(callId));
        int256 keeperGot = ch.cashOf(keeper) - keeperBefore;

        // 3. alice settles her 2 longs: she alone pays the cut for 2 of the 4 longs
        int256 aliceBefore = ch.cashOf(alice);
        engine.settle(alice, ids1(callId));
        int256 aliceGot = ch.cashOf(alice) - aliceBefore;

        emit log_named_int("keeper received for its 2 calls (incl. 1 bonus)", keeperGot);
        emit log_named_int("alice received for her 2 calls", aliceGot);
        emit log_named_uint("outstandingShortfall never recovered", engine.outstandingShortfall());
        emit log_named_int("netSettlementPayouts (should be 0)", ch.netSettlementPayouts());

        // Property: once every holder has settled, settlement is zero-sum and every credited shortfall
        // has been recovered; the clearinghouse holds at least every claim on it.
        assertEq(engine.outstandingShortfall(), 0, "credited shortfall never recovered");
        assertLe(ch.netSettlementPayouts(), 0, "settlement paid out more than it took in");
        assertGe(
            int256(usdc.balanceOf(address(ch)) * 1e12),
            ch.totalCash() + int256(ch.protocolFees()),
            "clearinghouse insolvent: tokens < cash claims + fees"
        );
    }
}
