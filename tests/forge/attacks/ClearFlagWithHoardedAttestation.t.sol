// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {BankruptcyFixture} from "../utils/BankruptcyFixture.sol";
import {MarginAttestation} from "../../../contracts/interfaces/IClearinghouse.sol";
import {ILiquidationEngine} from "../../../contracts/interfaces/ILiquidationEngine.sol";

/// @notice Attack (blocked): a price crash does not move alice's state hash, so an honest
///         attestation hoarded a few seconds before the crash (alice solvent, still within the
///         freshness tolerance) could clear the flag set on post-crash data, and the winning
///         counterparty (bob) would lift the gate and withdraw before ADL. clearFlag takes no
///         attestation older than the newest snapshot seen.
contract ClearFlagWithHoardedAttestationTest is BankruptcyFixture {
    event log_named_int(string key, int256 val);
    event log_named_uint(string key, uint256 val);

    function setUp() public {
        setUpBankruptcy(false);
    }

    function test_hoardedPreCrashAttestationCannotClearTheFlag() public {
        // t0: ETH at 2,500 - bob hoards an honest attestation of alice's (unchanged) portfolio
        (MarginAttestation memory hoarded, bytes memory hoardedSigs) = aliceAt(2_500e18);

        // t0 + 20 s: ETH crashes to 1,000; alice is bankrupt by 10,015 beyond a fund of 100; flagged
        vm.warp(block.timestamp + 20);
        postHeartbeat(uint64(block.timestamp)); // the oracle even publishes a heartbeat
        flagAlice();
        assertTrue(ch.withdrawalsGated(), "gated");

        // same block: bob tries to clear the flag with the pre-crash attestation ...
        vm.prank(bob);
        vm.expectRevert(
            abi.encodeWithSelector(
                ILiquidationEngine.ClearingWithOlderSnapshot.selector, hoarded.snapshotTime, uint64(block.timestamp)
            )
        );
        engine.clearFlag(alice, hoarded, hoardedSigs);
        emit log_named_uint("flaggedCount after clearFlag", ch.flaggedCount());

        // ... and withdraws his winnings with an honest attestation of his own current state
        MarginAttestation memory batt = attestation(bob, -6_000e18, 1_200e18, 960e18);
        bytes memory bsigs = oracleSign(batt);
        uint256 before = usdc.balanceOf(bob);
        if (!ch.withdrawalsGated()) {
            vm.prank(bob);
            ch.withdraw(100_000e6, bob, batt, bsigs);
        }
        emit log_named_uint(
            "bob withdrew (tokens) while alice is bankrupt beyond the fund", usdc.balanceOf(bob) - before
        );

        // Property: while an account is bankrupt beyond the fund, withdrawals stay gated.
        assertTrue(ch.flagged(alice), "flag of a still-bankrupt account cleared with a hoarded attestation");
        assertTrue(ch.withdrawalsGated(), "gate lifted while bad debt beyond the fund exists");
    }
}
