// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {BackstopFixture} from "../utils/BackstopFixture.sol";
import {MarginAttestation} from "../../../contracts/interfaces/IClearinghouse.sol";

/// @notice Attack: revive an old stall episode. Alice dips below MM at t0 (reported), recovers for
///         an hour with the same positions, dips for an instant at T = t0+3600 (the griefer keeps
///         that attestation) and is healthy again at T+5. Were a repeat to keep the first report's
///         time whatever the gap, the T report would "confirm" a stall of an hour and the backstop
///         would close a healthy account at once. After more than 2 × BACKSTOP_DELAY without a
///         report an episode starts anew, so the T report is only a first report.
contract BackstopOldStallEpisodeTest is BackstopFixture {
    function test_anOldEpisodeCannotBeConfirmedByALaterDip() public {
        uint256 t0 = block.timestamp;
        report(); // episode 1: below MM at t0
        vm.warp(t0 + 1_800);
        liquidationSkips(HEALTHY_MM); // an hour of health, positions unchanged

        uint256 T = t0 + 3_600;
        vm.warp(T);
        (MarginAttestation memory b, bytes memory bsigs) = aliceAt(MM); // MM 3,680 for one snapshot
        vm.warp(T + 5);
        liquidationSkips(HEALTHY_MM); // healthy again

        engine.reportStall(alice, b, bsigs);
        (, uint64 since, uint64 confirmedAt,) = engine.stalls(alice);
        assertEq(since, T, "a new episode after an hour of silence");
        assertEq(confirmedAt, T);
        backstopRefused(T + 60);
    }
}
