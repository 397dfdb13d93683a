// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {BackstopFixture} from "../utils/BackstopFixture.sol";
import {MarginAttestation} from "../../../contracts/interfaces/IClearinghouse.sol";
import {ILiquidationEngine} from "../../../contracts/interfaces/ILiquidationEngine.sol";

/// @notice Attack: confirm a stall with a hoarded attestation. One taken a block after the first
///         report (snapshot t0+12, deadline t0+72) is posted at t0+60, when the account is healthy
///         (its MM fell). Were the confirmation dated by the block, the backstop would close a
///         healthy account at the marks. reportStall dates it by the snapshot: t0+12 confirms
///         nothing, and an older snapshot than the last confirmation is refused.
contract BackstopConfirmedWithHoardedSnapshotTest is BackstopFixture {
    function test_hoardedConfirmationCannotCloseAHealthyAccount() public {
        uint256 t0 = block.timestamp;
        report(); // equity 2,985 < MM 3,680 at t0
        vm.warp(t0 + 12); // one block later the griefer asks the oracle again, and keeps the answer
        (MarginAttestation memory b, bytes memory bsigs) = aliceAt(MM);
        vm.warp(t0 + 60);
        liquidationSkips(HEALTHY_MM); // her MM fell: healthy, keepers skip her

        engine.reportStall(alice, b, bsigs); // confirms only what held at t0+12
        (, uint64 since, uint64 confirmedAt,) = engine.stalls(alice);
        assertEq(since, t0, "first report dated by its snapshot");
        assertEq(confirmedAt, t0 + 12, "confirmation dated by its snapshot, not the block");
        vm.expectRevert(
            abi.encodeWithSelector(ILiquidationEngine.StaleStallReport.selector, uint64(t0 + 12), uint64(t0 + 12))
        );
        engine.reportStall(alice, b, bsigs);
        backstopRefused(t0 + 60);
    }
}
