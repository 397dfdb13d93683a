// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {SettlementFixture} from "../utils/SettlementFixture.sol";
import {MarginAttestation} from "../../../contracts/interfaces/IClearinghouse.sol";

/// @notice Attack: gate everyone's withdrawals by "settling" a solvent account early. alice
///         (deposit 300) bought one 3,000 call for a premium of 1,000: her cash is -700.5, her
///         equity +299.5. ETH settles at 4,000; the call pays her 1,000 once bob (the short) has
///         settled. Before that, anyone calls settle(alice, []). Her deficit is final only once she
///         holds nothing, so her negative cash waits for her long: no flag, no gate.
contract SettleBeforeAPendingLongTest is SettlementFixture {
    event log_named_uint(string key, uint256 val);
    event log_named_string(string key, string val);

    function setUp() public {
        setUpLiquidation(3, 2);
        fund(alice, 300);
        fund(bob, 10_000);
        fund(carol, 5_000); // an unrelated user who wants to withdraw
        fill(order(bob, callId, -1e18, 1_000e18, 1), bobKey, alice, 1e18, quote(-1_000e18, 1_000e18, 1_000e18, 200e18));
        vm.warp(expiry + 1);
        post(ETH, 4_000e18);
    }

    function test_settlingEarlyCannotFlagASolventLongHolder() public {
        assertLt(ch.cashOf(alice), int256(0), "alice bought on credit");
        address griefer = address(0xBAD);
        vm.prank(griefer);
        engine.settle(alice, new uint256[](0));
        emit log_named_int("alice cash", ch.cashOf(alice));
        emit log_named_uint("flaggedCount", ch.flaggedCount());
        bool gatedAfterGrief = ch.withdrawalsGated();

        // someone clears it with a fresh attestation (equity +299.5) ... and the griefer re-flags
        if (gatedAfterGrief) {
            vm.warp(block.timestamp + 1);
            MarginAttestation memory a = attestation(alice, 1_000e18, 0, 0);
            engine.clearFlag(alice, a, oracleSign(a));
            assertFalse(ch.withdrawalsGated(), "cleared");
            vm.prank(griefer);
            engine.settle(alice, new uint256[](0));
            emit log_named_string("re-flagged after clearFlag", ch.withdrawalsGated() ? "yes" : "no");
        }

        // proof that alice never had bad debt: settle bob, then alice -> she ends positive
        uint256[] memory ids = new uint256[](1);
        ids[0] = callId;
        engine.settle(bob, ids);
        engine.settle(alice, ids);
        emit log_named_int("alice cash after her long paid", ch.cashOf(alice));
        assertGt(ch.cashOf(alice), int256(0), "alice solvent all along");

        // Property: no flag (withdrawal gate) without real bad debt
        assertFalse(gatedAfterGrief, "solvent account flagged: withdrawals gated for everyone");
    }
}
