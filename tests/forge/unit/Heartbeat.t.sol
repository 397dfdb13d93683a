// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {LiquidationFixture} from "../utils/LiquidationFixture.sol";
import {IClearinghouse, MarginAttestation, SnapshotHeartbeat} from "../../../contracts/interfaces/IClearinghouse.sol";
import {ILiquidationEngine, LiquidationRequest} from "../../../contracts/interfaces/ILiquidationEngine.sol";

/// @notice Hoarded attestations: one signed during a price dip must stop working once the oracle
///         has published newer market data, even if nobody involved ever uses a newer one.
///         Alice is long 10 perpetuals from 3,000 (deposit 10,000); the fund holds 100. The dip:
///         ETH at 2,300 (alice below MM) and 1,000 (alice bankrupt beyond the fund), both signed
///         at t0 with a deadline of t0 + 100; the market then recovers.
contract HeartbeatTest is LiquidationFixture {
    uint64 internal t0;

    function setUp() public {
        setUpLiquidation(3, 2);
        fund(alice, 10_000);
        fund(bob, 100_000);
        fund(keeper, 100_000);
        seedFund(100);
        aliceBuysTenPerpsFromBob();
        t0 = uint64(block.timestamp);
    }

    /// @dev An attestation of the account's current state, signed at t0 and valid until t0 + 100.
    function hoarded(address account, int256 value, uint256 mm) internal view returns (MarginAttestation memory att) {
        att = attestation(account, value, mm * 5 / 4, mm);
        att.snapshotTime = t0;
        att.deadline = t0 + 100;
    }

    function dipLiquidation()
        internal
        view
        returns (LiquidationRequest[] memory reqs, MarginAttestation memory katt, bytes memory ksigs)
    {
        reqs = new LiquidationRequest[](1);
        MarginAttestation memory att = hoarded(alice, 23_000e18, 3_680e18); // equity 2,985 < MM 3,680
        reqs[0] = LiquidationRequest(alice, att, oracleSign(att), 1e18);
        katt = hoarded(keeper, 0, 0);
        ksigs = oracleSign(katt);
    }

    /// Guards: a dip attestation is refused for liquidation once a newer heartbeat is posted.
    function test_heartbeatRetiresAHoardedLiquidationAttestation() public {
        (LiquidationRequest[] memory reqs, MarginAttestation memory katt, bytes memory ksigs) = dipLiquidation();
        vm.warp(t0 + 40);
        // without a heartbeat the hoarded attestations still pass (the snapshot is 40 s old)
        uint256 snap = vm.snapshotState();
        vm.prank(keeper);
        engine.liquidate(reqs, katt, ksigs);
        assertLt(ch.positionOf(alice, perpId), 10e18, "liquidated on the dip");
        vm.revertToState(snap);
        // the oracle publishes its newest data (ETH back up): anyone posts it
        vm.prank(address(0x5EED));
        postHeartbeat(t0 + 40);
        assertEq(uint256(ch.latestSnapshotTime()), t0 + 40, "floor raised");
        vm.prank(keeper);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.SnapshotTooOld.selector, t0, t0 + 40 - 30));
        engine.liquidate(reqs, katt, ksigs);
        assertEq(ch.positionOf(alice, perpId), 10e18, "alice untouched");
    }

    /// Guards: a dip attestation is refused for flagBankruptcy once a newer heartbeat is posted.
    function test_heartbeatRetiresAHoardedBankruptcyAttestation() public {
        MarginAttestation memory att = hoarded(alice, 10_000e18, 1_600e18); // equity −10,015
        bytes memory sigs = oracleSign(att);
        vm.warp(t0 + 40);
        uint256 snap = vm.snapshotState();
        engine.flagBankruptcy(alice, att, sigs);
        assertTrue(ch.withdrawalsGated(), "flagged on the dip");
        vm.revertToState(snap);
        postHeartbeat(t0 + 40);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.SnapshotTooOld.selector, t0, t0 + 10));
        engine.flagBankruptcy(alice, att, sigs);
        assertFalse(ch.withdrawalsGated(), "withdrawals not gated by a stale dip");
    }

    /// Guards: attestations from the newest data keep working after a heartbeat.
    function test_freshAttestationsStillAcceptedAfterAHeartbeat() public {
        vm.warp(t0 + 40);
        postHeartbeat(t0 + 35);
        MarginAttestation memory att = attestation(alice, 31_000e18, 6_200e18, 4_960e18);
        att.snapshotTime = t0 + 20; // within the 30 s tolerance of the newest
        bytes memory sigs = oracleSign(att);
        vm.prank(alice);
        ch.withdraw(100e6, alice, att, sigs);
        assertEq(usdc.balanceOf(alice), 100e6, "withdrawn");
    }

    /// Guards: postSnapshot needs the signer threshold.
    function test_heartbeatNeedsTheThreshold() public {
        vm.warp(t0 + 40);
        bytes memory one = signDigest(heartbeatDigest(t0 + 40), keysSlice(0, 1));
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.NotEnoughSignatures.selector, 1, 2));
        ch.postSnapshot(SnapshotHeartbeat(t0 + 40), one);
        uint256[] memory outsider = new uint256[](2);
        outsider[0] = 0xBAD1;
        outsider[1] = 0xBAD2;
        if (vm.addr(0xBAD1) > vm.addr(0xBAD2)) (outsider[0], outsider[1]) = (0xBAD2, 0xBAD1);
        bytes memory forged = signDigest(heartbeatDigest(t0 + 40), outsider);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.UnauthorizedSigner.selector, vm.addr(outsider[0])));
        ch.postSnapshot(SnapshotHeartbeat(t0 + 40), forged);
        assertEq(uint256(ch.latestSnapshotTime()), t0, "unchanged");
    }

    /// Guards: postSnapshot refuses a time in the future (it would freeze every attestation).
    function test_heartbeatFromTheFutureRefused() public {
        vm.warp(t0 + 40);
        bytes memory sigs = signDigest(heartbeatDigest(t0 + 41), oracleKeys);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.SnapshotInFuture.selector, t0 + 41));
        ch.postSnapshot(SnapshotHeartbeat(t0 + 41), sigs);
    }

    /// Guards: an older heartbeat never lowers the floor.
    function test_olderHeartbeatNeverLowersTheFloor() public {
        vm.warp(t0 + 40);
        vm.expectEmit(address(ch));
        emit IClearinghouse.SnapshotPosted(t0 + 40);
        postHeartbeat(t0 + 40);
        postHeartbeat(t0 + 5);
        assertEq(uint256(ch.latestSnapshotTime()), t0 + 40, "still the newest");
        MarginAttestation memory att = hoarded(alice, 10_000e18, 1_600e18);
        bytes memory sigs = oracleSign(att);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.SnapshotTooOld.selector, t0, t0 + 10));
        engine.flagBankruptcy(alice, att, sigs);
    }

    /// Guards: the heartbeat's time is what the oracle signed (a relabelled one is refused).
    function test_heartbeatTimeIsSigned() public {
        vm.warp(t0 + 40);
        bytes memory sigs = signDigest(heartbeatDigest(t0 + 10), oracleKeys);
        vm.expectRevert(); // recovers to addresses outside the signer set
        ch.postSnapshot(SnapshotHeartbeat(t0 + 40), sigs);
        ch.postSnapshot(SnapshotHeartbeat(t0 + 10), sigs);
        assertEq(uint256(ch.latestSnapshotTime()), t0 + 10, "the signed time");
    }
}
