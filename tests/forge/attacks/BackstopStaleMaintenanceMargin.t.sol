// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {LiquidationFixture} from "../utils/LiquidationFixture.sol";
import {MarginAttestation} from "../../../contracts/interfaces/IClearinghouse.sol";
import {AdlAttestation, AdlFill, ILiquidationEngine, LiquidationRequest} from "../../../contracts/interfaces/ILiquidationEngine.sol";

/// @notice Attack (blocked): an account below MM once, healthy later without a state change (its
///         MM fell: lower vol, time, a params change — here the oracle's MM is 2,900 < equity
///         2,985), must not be force-closed by the backstop on the MM stored an hour ago. The
///         backstop needs a confirmation (still below MM) within BACKSTOP_DELAY.
contract BackstopStaleMaintenanceMarginTest is LiquidationFixture {
    uint256 internal constant MARK = 2_300e18;

    function setUp() public {
        setUpLiquidation(3, 2);
        fund(alice, 10_000);
        fund(bob, 100_000);
        fund(carol, 100_000);
        fund(keeper, 100_000);
        seedFund(1_000);
        fill(order(bob, perpId, -6e18, 3_000e18, 1), bobKey, alice, 6e18, quote(-18_000e18, 4_000e18, 18_000e18, 4_000e18));
        fill(order(carol, perpId, -4e18, 3_000e18, 1), carolKey, alice, 4e18, quote(-12_000e18, 3_000e18, 30_000e18, 6_000e18));
    }

    function test_staleStallReportCannotCloseARecoveredAccount() public {
        MarginAttestation memory a = attestation(alice, int256(10 * MARK), 4_600e18, 3_680e18);
        engine.reportStall(alice, a, oracleSign(a)); // equity 2,985 < MM 3,680 then

        vm.warp(block.timestamp + 1 hours);
        // now: same marks, the oracle's MM for her book is 2,900: she is healthy
        LiquidationRequest[] memory reqs = new LiquidationRequest[](1);
        reqs[0] = request(alice, int256(10 * MARK), 2_900e18);
        (MarginAttestation memory katt, bytes memory ksigs) = keeperNow(0, 0);
        vm.prank(keeper);
        vm.expectRevert(ILiquidationEngine.NothingLiquidated.selector); // skipped: recovered
        engine.liquidate(reqs, katt, ksigs);

        // anyone: backstop plan at the same marks
        address[] memory ranked = new address[](2);
        ranked[0] = carol;
        ranked[1] = bob;
        uint256[] memory ids = new uint256[](1);
        ids[0] = perpId;
        uint256[] memory marks = new uint256[](1);
        marks[0] = MARK;
        bytes32[] memory roots = new bytes32[](1);
        AdlFill[] memory fills;
        (roots[0], fills) = queue(0, perpId, ranked);
        (AdlAttestation memory att, bytes memory sigs) = adlAttestation(alice, ids, marks, roots);
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.BackstopNotDue.selector, block.timestamp - 1 hours + 60));
        engine.deleverage(att, sigs, fills);
        assertEq(ch.positionOf(alice, perpId), 10e18, "healthy account force-closed by the backstop");
    }
}
