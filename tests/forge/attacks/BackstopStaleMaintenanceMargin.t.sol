// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {BackstopFixture} from "../utils/BackstopFixture.sol";

/// @notice Attack (blocked): an account below MM once, healthy later without a state change (its
///         MM fell: lower vol, time, a params change — here the oracle's MM is 2,900 < equity
///         2,985), must not be force-closed by the backstop on the MM stored an hour ago. The
///         backstop needs a confirmation (still below MM) within BACKSTOP_DELAY.
contract BackstopStaleMaintenanceMarginTest is BackstopFixture {
    function test_staleStallReportCannotCloseARecoveredAccount() public {
        report(); // equity 2,985 < MM 3,680 then
        uint256 due = block.timestamp + engine.BACKSTOP_DELAY();
        vm.warp(block.timestamp + 1 hours);
        liquidationSkips(HEALTHY_MM); // now healthy: keepers skip her
        backstopRefused(due); // anyone's backstop plan at the same marks
    }
}
