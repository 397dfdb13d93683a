// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {LiquidationFixture} from "../utils/LiquidationFixture.sol";
import {MarginAttestation} from "../../../contracts/interfaces/IClearinghouse.sol";
import {AdlAttestation, AdlFill, ILiquidationEngine, LiquidationRequest} from "../../../contracts/interfaces/ILiquidationEngine.sol";

/// @notice Attack: confirm a stall with a hoarded attestation. One taken a block after the first
///         report (snapshot t0+12, deadline t0+72) is posted at t0+60, when the account is healthy
///         (its MM fell). Were the confirmation dated by the block, the backstop would close a
///         healthy account at the marks. reportStall dates it by the snapshot: t0+12 confirms
///         nothing, and an older snapshot than the last confirmation is refused.
contract BackstopConfirmedWithHoardedSnapshotTest is LiquidationFixture {
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

    function _assertStall(uint256 since, uint256 confirmedAt) internal view {
        (, uint64 s, uint64 c,) = engine.stalls(alice);
        assertEq(s, since, "first report dated by its snapshot");
        assertEq(c, confirmedAt, "confirmation dated by its snapshot, not the block");
    }

    function test_hoardedConfirmationCannotCloseAHealthyAccount() public {
        uint256 t0 = block.timestamp;
        MarginAttestation memory a = attestation(alice, int256(10 * MARK), 4_600e18, 3_680e18);
        engine.reportStall(alice, a, oracleSign(a)); // equity 2,985 < MM 3,680 at t0

        // one block later the griefer asks the oracle again (still below MM at that snapshot)
        vm.warp(t0 + 12);
        MarginAttestation memory b = attestation(alice, int256(10 * MARK), 4_600e18, 3_680e18);
        bytes memory bsigs = oracleSign(b); // snapshot t0+12, deadline t0+72: hoarded, not posted

        // t0+60: the oracle's MM for her unchanged book is 2,900 -> healthy; liquidators skip her
        vm.warp(t0 + 60);
        LiquidationRequest[] memory reqs = new LiquidationRequest[](1);
        reqs[0] = request(alice, int256(10 * MARK), 2_900e18);
        (MarginAttestation memory katt, bytes memory ksigs) = keeperNow(0, 0);
        vm.prank(keeper);
        vm.expectRevert(ILiquidationEngine.NothingLiquidated.selector);
        engine.liquidate(reqs, katt, ksigs);

        // the hoarded t0+12 attestation confirms only what held at t0+12
        engine.reportStall(alice, b, bsigs);
        _assertStall(t0, t0 + 12);
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.StaleStallReport.selector, uint64(t0 + 12), uint64(t0 + 12)));
        engine.reportStall(alice, b, bsigs);

        // the backstop plan at the current (unchanged) marks closes her
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
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.BackstopNotDue.selector, block.timestamp));
        engine.deleverage(att, sigs, fills);
        assertEq(ch.positionOf(alice, perpId), 10e18, "the healthy account keeps its position");
    }
}
