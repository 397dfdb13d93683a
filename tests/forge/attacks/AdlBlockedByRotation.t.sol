// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {BankruptcyFixture} from "../utils/BankruptcyFixture.sol";
import {AdlAttestation, AdlFill, ILiquidationEngine} from "../../../contracts/interfaces/ILiquidationEngine.sol";

/// @notice Attack (blocked): a queued counterparty moves its opposite position to an account
///         outside the queue (its own sock) in front of deleverage, to make the plan revert
///         (AdlIncomplete) for a taker fee per rotation. The deleveraging completes partially
///         instead; the rest stays with the account for the next plan.
contract AdlBlockedByRotationTest is BankruptcyFixture {
    function setUp() public {
        setUpBankruptcy(false);
    }

    function test_rotationInFrontOfAdlDoesNotRevertIt() public {
        flagAlice();
        (AdlAttestation memory att, bytes memory sigs, AdlFill[] memory fills) = alicePlan();
        // bob hands his short 6 to a sock (fresh account, funded for IM) right before the keeper's tx
        uint256 sockKey = 0x50C4;
        address sock = vm.addr(sockKey);
        fund(sock, 2_000);
        fill(order(sock, perpId, -6e18, 1_000e18, 1), sockKey, bob, 6e18, quote(-6_000e18, 1_200e18, 0, 0));
        bool ok;
        try engine.deleverage(att, sigs, fills) {
            ok = true;
        } catch {}
        assertTrue(ok, "keeper's ADL reverted (AdlIncomplete) after a counterparty rotated its position");
    }
}
