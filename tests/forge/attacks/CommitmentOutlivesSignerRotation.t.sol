// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {LiquidationFixture} from "../utils/LiquidationFixture.sol";
import {MerkleBuilder} from "../utils/MerkleBuilder.sol";
import {Digests} from "../utils/Digests.sol";
import {Clearinghouse} from "../../../contracts/core/Clearinghouse.sol";
import {SnapshotCommitments} from "../../../contracts/core/SnapshotCommitments.sol";
import {ISnapshotCommitments} from "../../../contracts/interfaces/ISnapshotCommitments.sol";
import {IClearinghouse, MarginAttestation, SnapshotCommitment} from "../../../contracts/interfaces/IClearinghouse.sol";
import {LiquidationRequest} from "../../../contracts/interfaces/ILiquidationEngine.sol";

/// @notice Leaked signer keys pre-sign a commitment whose leaves are dated in the future, hoping
///         they outlive the signer rotation that instantly kills plain signatures (withdrawals can
///         be paused, liquidations cannot). Refused: a root dies with its signer set, and a leaf
///         must carry its root's snapshot time, deadline and params version.
contract CommitmentOutlivesSignerRotationTest is LiquidationFixture {
    using Digests for Clearinghouse;

    SnapshotCommitments internal registry;
    uint64 internal t0;
    uint64 internal tUse;

    function setUp() public {
        openAliceLong(1_000);
        t0 = uint64(block.timestamp);
        tUse = t0 + 30 days;
    }

    function beforeFirstDeposit() internal override {
        registry = new SnapshotCommitments(address(ch));
        vm.prank(owner);
        ch.bootstrapEngine(address(registry));
    }

    function futureLeaf(address account, int256 value, uint256 im, uint256 mm)
        internal
        view
        returns (MarginAttestation memory a)
    {
        a = attestation(account, value, im, mm);
        a.snapshotTime = tUse; // in the future when signed and posted
        a.deadline = type(uint64).max;
    }

    /// @dev The leaked keys commit to `a` and `b` and post the root (dated now: accepted).
    function plant(MarginAttestation memory a, MarginAttestation memory b)
        internal
        returns (MarginAttestation[] memory atts, bytes32[] memory ls, bytes32 root)
    {
        atts = new MarginAttestation[](2);
        (atts[0], atts[1]) = (a, b);
        ls = new bytes32[](2);
        (ls[0], ls[1]) = (Digests.leaf(a), Digests.leaf(b));
        root = MerkleBuilder.root(ls);
        postRoot(registry, root, 2, oracleKeys);
    }

    function rotateSigners() internal {
        address[] memory fresh = new address[](1);
        fresh[0] = vm.addr(0xF4E54);
        vm.prank(owner);
        ch.scheduleSignerSet(fresh, 1);
        vm.warp(block.timestamp + TIMELOCK);
        ch.executeSignerSet();
    }

    function test_leakedKeysDoNotSurviveRotation_withdrawal() public {
        // 1. the leaked oracle keys commit a book with a future-dated, absurd leaf for alice
        (MarginAttestation[] memory atts, bytes32[] memory ls, bytes32 root) =
            plant(futureLeaf(alice, 10_000_000e18, 0, 0), futureLeaf(keeper, 0, 0, 0)); // commitment itself is dated now: accepted
        assertTrue(registry.rootPosted(root));

        // 2. governance notices and rotates the signer set
        rotateSigners();
        // plain signatures of the old set are dead now
        MarginAttestation memory signed = attestation(alice, 10_000_000e18, 0, 0);
        bytes memory oldSigs = oracleSign(signed);
        vm.prank(alice);
        vm.expectRevert();
        ch.withdraw(1e6, alice, signed, oldSigs);

        // 3. weeks later the pre-dated leaf becomes "fresh" and drains the pool
        vm.warp(tUse);
        uint256 pool = usdc.balanceOf(address(ch));
        bytes memory p = proofBytes(address(registry), ls, 0);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(ISnapshotCommitments.RootOfFormerSigners.selector, root));
        ch.withdraw(pool, alice, atts[0], p);
        assertEq(usdc.balanceOf(address(ch)), pool, "nothing left the clearinghouse");
    }

    /// Without a rotation the future-dated leaves are refused too: they are not their root's.
    function test_futureDatedLeavesRefusedEvenWithoutARotation() public {
        (MarginAttestation[] memory atts, bytes32[] memory ls, bytes32 root) =
            plant(futureLeaf(alice, 10_000_000e18, 0, 0), futureLeaf(keeper, 0, 0, 0));
        vm.warp(tUse);
        bytes memory p = proofBytes(address(registry), ls, 0);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(ISnapshotCommitments.LeafNotOfCommitment.selector, root));
        ch.withdraw(1e6, alice, atts[0], p);
    }

    function test_leakedKeysDoNotSurviveRotation_liquidation() public {
        // bob: short 6 at 3,000, cash 118,000 — healthy. The leaked keys commit a leaf showing him
        // just above zero equity (value −117,000) and a leaf for the keeper (flat).
        (MarginAttestation[] memory atts, bytes32[] memory ls, bytes32 root) =
            plant(futureLeaf(bob, -117_000e18, 12_500e18, 10_000e18), futureLeaf(keeper, 0, 0, 0));
        rotateSigners();
        // the guardian pauses everything it can
        vm.prank(guardian);
        ch.setPaused(true, true);

        vm.warp(tUse);
        int256 keeperCashBefore = ch.cashOf(keeper);
        int256 bobCashBefore = ch.cashOf(bob);
        LiquidationRequest[] memory reqs = new LiquidationRequest[](1);
        reqs[0] = LiquidationRequest(bob, atts[0], proofBytes(address(registry), ls, 0), WAD);
        bytes memory kproof = proofBytes(address(registry), ls, 1);
        vm.prank(keeper);
        vm.expectRevert(abi.encodeWithSelector(ISnapshotCommitments.RootOfFormerSigners.selector, root));
        engine.liquidate(reqs, atts[1], kproof);
        assertEq(ch.cashOf(keeper), keeperCashBefore, "the keeper took nothing");
        assertEq(ch.cashOf(bob), bobCashBefore, "bob untouched");
    }
}
