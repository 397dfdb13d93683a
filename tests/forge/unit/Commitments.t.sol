// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {LiquidationFixture} from "../utils/LiquidationFixture.sol";
import {MerkleBuilder} from "../utils/MerkleBuilder.sol";
import {Digests} from "../utils/Digests.sol";
import {Clearinghouse} from "../../../contracts/core/Clearinghouse.sol";
import {SnapshotCommitments} from "../../../contracts/core/SnapshotCommitments.sol";
import {ISnapshotCommitments} from "../../../contracts/interfaces/ISnapshotCommitments.sol";
import {IClearinghouse, MarginAttestation, SnapshotCommitment} from "../../../contracts/interfaces/IClearinghouse.sol";
import {IClearinghouseEngineHooks} from "../../../contracts/interfaces/IClearinghouseEngineHooks.sol";
import {LiquidationRequest} from "../../../contracts/interfaces/ILiquidationEngine.sol";

/// @notice Whole-book commitments: one threshold-signed root per snapshot, then any account's
///         attestation passes with a Merkle proof wherever signatures would. Alice is long 10
///         perpetuals from 3,000 with 10,000 of collateral (cash −20,000); 2-of-3 oracle.
contract CommitmentsTest is LiquidationFixture {
    using Digests for Clearinghouse;

    SnapshotCommitments internal registry;

    function setUp() public {
        openAliceLong(1_000);
    }

    function beforeFirstDeposit() internal override {
        registry = new SnapshotCommitments(address(ch));
        vm.prank(owner);
        ch.bootstrapEngine(address(registry));
    }

    // ------------------------------------------------------------------ helpers

    function leaves(MarginAttestation[] memory atts) internal pure returns (bytes32[] memory out) {
        out = new bytes32[](atts.length);
        for (uint256 i; i < atts.length; ++i) {
            out[i] = Digests.leaf(atts[i]);
        }
    }

    function commitmentOf(bytes32 root, uint256 count) internal view returns (SnapshotCommitment memory) {
        return SnapshotCommitment({
            root: root,
            snapshotTime: uint64(block.timestamp),
            deadline: uint64(block.timestamp + 60),
            paramsVersion: attestVersion,
            accounts: uint32(count)
        });
    }

    /// @dev Commits `atts` (signed by the oracle's keys) and returns the root.
    function post(MarginAttestation[] memory atts) internal returns (bytes32 root) {
        root = MerkleBuilder.root(leaves(atts));
        postRoot(registry, root, atts.length, oracleKeys);
    }

    function proofOf(MarginAttestation[] memory atts, uint256 index, address reg) internal pure returns (bytes memory) {
        return proofBytes(reg, leaves(atts), index);
    }

    /// @dev The book at the dip: alice below MM (equity 3,000 < 3,680), bob and carol healthy,
    ///      the keeper flat.
    function book() internal view returns (MarginAttestation[] memory atts) {
        atts = new MarginAttestation[](4);
        atts[0] = attestation(alice, 23_000e18, 4_600e18, 3_680e18);
        atts[1] = attestation(bob, -13_800e18, 2_760e18, 2_208e18);
        atts[2] = attestation(carol, -9_200e18, 1_840e18, 1_472e18);
        atts[3] = attestation(keeper, 0, 0, 0);
    }

    // ------------------------------------------------------------------ every check accepts a proof

    /// Guards: a liquidation passes with proofs for the victim and the liquidator, no signature.
    function test_liquidationWithProofs() public {
        MarginAttestation[] memory atts = book();
        post(atts);
        LiquidationRequest[] memory reqs = new LiquidationRequest[](1);
        reqs[0] = LiquidationRequest(alice, atts[0], proofOf(atts, 0, address(registry)), WAD);
        vm.prank(keeper);
        engine.liquidate(reqs, atts[3], proofOf(atts, 3, address(registry)));
        assertLt(ch.positionOf(alice, perpId), 10e18, "alice liquidated");
        assertGt(ch.positionOf(keeper, perpId), 0, "the keeper took the slice");
    }

    /// Guards: a withdrawal passes with a proof, and the IM check still binds.
    function test_withdrawalWithAProof() public {
        MarginAttestation[] memory atts = book();
        atts[1] = attestation(bob, -13_800e18, 2_760e18, 2_208e18); // bob: cash 118,000, equity 104,200
        post(atts);
        bytes memory p = proofOf(atts, 1, address(registry));
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.InsufficientEquity.selector, int256(2_700e18), 2_760e18));
        ch.withdraw(101_500e6, bob, atts[1], p);
        vm.prank(bob);
        ch.withdraw(100_000e6, bob, atts[1], p);
        assertEq(usdc.balanceOf(bob), 100_000e6, "withdrawn");
    }

    /// Guards: flagging a bankruptcy accepts a proof.
    function test_flagWithAProof() public {
        MarginAttestation[] memory atts = book();
        atts[0] = attestation(alice, 5_000e18, 1_000e18, 800e18); // equity −15,000: bankrupt
        post(atts);
        engine.flagBankruptcy(alice, atts[0], proofOf(atts, 0, address(registry)));
        assertTrue(ch.withdrawalsGated(), "flagged");
    }

    // ------------------------------------------------------------------ what a proof cannot do

    /// Guards: a proof against a root nobody posted is refused.
    function test_unpostedRootRefused() public {
        MarginAttestation[] memory atts = book();
        bytes memory p = proofOf(atts, 1, address(registry));
        vm.prank(bob);
        vm.expectRevert(
            abi.encodeWithSelector(ISnapshotCommitments.RootNotPosted.selector, MerkleBuilder.root(leaves(atts)))
        );
        ch.withdraw(1e6, bob, atts[1], p);
    }

    /// Guards: a leaf changed after the root was posted (a higher value) does not prove.
    function test_alteredLeafRefused() public {
        MarginAttestation[] memory atts = book();
        post(atts);
        bytes memory p = proofOf(atts, 0, address(registry));
        MarginAttestation memory richer = atts[0];
        richer.value = 40_000e18;
        vm.prank(alice);
        vm.expectRevert(ISnapshotCommitments.InvalidProof.selector);
        ch.withdraw(1e6, alice, richer, p);
    }

    /// Guards: only a registry that is one of the clearinghouse's engines counts.
    function test_registryMustBeAnEngine() public {
        SnapshotCommitments rogue = new SnapshotCommitments(address(ch));
        MarginAttestation[] memory atts = book();
        bytes32 root = post(atts); // posted on the real registry only
        bytes memory p = proofOf(atts, 1, address(rogue));
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.UnknownRegistry.selector, address(rogue)));
        ch.withdraw(1e6, bob, atts[1], p);
        // the rogue registry cannot even store a root: it is no engine
        SnapshotCommitment memory c = commitmentOf(root, atts.length);
        bytes memory sigs = signDigest(ch.commitmentDigest(c), oracleKeys);
        vm.expectRevert(IClearinghouseEngineHooks.NotEngine.selector);
        rogue.postCommitment(c, sigs);
    }

    /// Guards: a leaf of a state the account has left is refused (as a signed attestation is).
    function test_leafOfAnOldStateRefused() public {
        MarginAttestation[] memory atts = book();
        post(atts);
        bytes32 before = atts[1].stateHash;
        fill(
            order(bob, perpId, -1e18, 3_000e18, 2),
            bobKey,
            carol,
            1e18,
            quote(-16_100e18, 3_220e18, -6_900e18, 1_380e18)
        );
        bytes32 now_ = ch.stateHashOf(bob);
        bytes memory p = proofOf(atts, 1, address(registry));
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.WrongPortfolioState.selector, now_, before));
        ch.withdraw(1e6, bob, atts[1], p);
    }

    /// Guards: a leaf expires with its deadline, whatever the root.
    function test_expiredLeafRefused() public {
        MarginAttestation[] memory atts = book();
        post(atts);
        vm.warp(block.timestamp + 61);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.AttestationExpired.selector, atts[1].deadline));
        ch.withdraw(1e6, bob, atts[1], proofOf(atts, 1, address(registry)));
    }

    /// Guards: proof bytes that are not whole words, or too short to name a root, are refused.
    function test_malformedProofRefused() public {
        MarginAttestation[] memory atts = book();
        post(atts);
        vm.prank(bob);
        vm.expectRevert(IClearinghouse.MalformedProof.selector);
        ch.withdraw(1e6, bob, atts[1], new bytes(32)); // a registry and no root
        vm.prank(bob);
        vm.expectRevert(IClearinghouse.MalformedProof.selector);
        ch.withdraw(1e6, bob, atts[1], new bytes(97));
    }

    /// Guards: a root dies with the signer set that signed it (as its signatures would), and the
    ///         new set can post it again.
    function test_rootDiesWithItsSignerSet() public {
        MarginAttestation[] memory atts = book();
        bytes32 root = post(atts);
        bytes memory p = proofOf(atts, 1, address(registry));
        address[] memory fresh = new address[](2);
        fresh[0] = vm.addr(0xF1);
        fresh[1] = vm.addr(0xF2);
        if (fresh[0] > fresh[1]) (fresh[0], fresh[1]) = (fresh[1], fresh[0]);
        vm.prank(owner);
        ch.scheduleSignerSet(fresh, 2);
        vm.warp(block.timestamp + TIMELOCK);
        ch.executeSignerSet();
        assertFalse(registry.rootPosted(root), "retired with its signers");
        // a leaf still within its deadline (re-dated for the new time) cannot come back either
        MarginAttestation[] memory again = book();
        bytes32 newRoot = MerkleBuilder.root(leaves(again));
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(ISnapshotCommitments.RootNotPosted.selector, newRoot));
        ch.withdraw(1e6, bob, again[1], proofOf(again, 1, address(registry)));
        p; // the old proof names a root of the former set: refused the same way below
        uint256[] memory keys = new uint256[](2);
        (keys[0], keys[1]) =
            vm.addr(0xF1) < vm.addr(0xF2) ? (uint256(0xF1), uint256(0xF2)) : (uint256(0xF2), uint256(0xF1));
        postRoot(registry, newRoot, again.length, keys); // the new set posts a fresh book
        vm.prank(bob);
        ch.withdraw(1e6, bob, again[1], proofOf(again, 1, address(registry)));
        assertEq(usdc.balanceOf(bob), 1e6, "withdrawn against the new set's root");
    }

    /// Guards: a leaf must carry its commitment's snapshot time, deadline and params version — a
    ///         leaf dated later than its root (to outlive it) is refused.
    function test_leafDatedOtherThanItsRootRefused() public {
        MarginAttestation[] memory atts = book();
        atts[1].deadline = uint64(block.timestamp + 3_600); // the root says now + 60
        bytes32 root = post(atts);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(ISnapshotCommitments.LeafNotOfCommitment.selector, root));
        ch.withdraw(1e6, bob, atts[1], proofOf(atts, 1, address(registry)));
    }

    /// Guards: only the clearinghouse asks the registry to verify a leaf.
    function test_onlyTheClearinghouseVerifies() public {
        MarginAttestation[] memory atts = book();
        post(atts);
        bytes memory p = proofOf(atts, 1, address(registry));
        bytes memory tail = new bytes(p.length - 32);
        for (uint256 i; i < tail.length; ++i) {
            tail[i] = p[i + 32];
        }
        vm.expectRevert(ISnapshotCommitments.NotClearinghouse.selector);
        registry.verifyLeaf(atts[1], tail);
    }

    // ------------------------------------------------------------------ posting

    /// Guards: posting needs the threshold, the current params version and a live deadline;
    ///         posting again is a no-op; a post raises the freshness floor.
    function test_postingRules() public {
        bytes32 root = keccak256("root");
        vm.warp(block.timestamp + 100);
        SnapshotCommitment memory c = commitmentOf(root, 7);
        bytes32 digest = ch.commitmentDigest(c);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.NotEnoughSignatures.selector, 1, 2));
        registry.postCommitment(c, signDigest(digest, keysSlice(0, 1)));

        SnapshotCommitment memory wrong = commitmentOf(root, 7);
        wrong.paramsVersion = attestVersion + 1;
        bytes memory wrongSigs = signDigest(ch.commitmentDigest(wrong), oracleKeys);
        vm.expectRevert(
            abi.encodeWithSelector(IClearinghouse.WrongParamsVersion.selector, attestVersion, attestVersion + 1)
        );
        registry.postCommitment(wrong, wrongSigs);

        SnapshotCommitment memory expired = commitmentOf(root, 7);
        expired.deadline = uint64(block.timestamp - 1);
        bytes memory expiredSigs = signDigest(ch.commitmentDigest(expired), oracleKeys);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.AttestationExpired.selector, expired.deadline));
        registry.postCommitment(expired, expiredSigs);

        bytes memory sigs = signDigest(digest, oracleKeys);
        vm.expectEmit(address(registry));
        emit ISnapshotCommitments.CommitmentPosted(root, address(this), c.snapshotTime, c.deadline, c.paramsVersion, 7);
        registry.postCommitment(c, sigs);
        assertTrue(registry.rootPosted(root), "stored");
        assertEq(uint256(ch.latestSnapshotTime()), c.snapshotTime, "the freshness floor rose");
        vm.recordLogs();
        registry.postCommitment(c, sigs); // again: nothing happens, nothing reverts
        assertEq(vm.getRecordedLogs().length, 0, "no second event");
        assertEq(
            registry.commitmentHash(c),
            keccak256(
                abi.encode(
                    keccak256(
                        "SnapshotCommitment(bytes32 root,uint64 snapshotTime,uint64 deadline,uint32 paramsVersion,uint32 accounts)"
                    ),
                    c
                )
            ),
            "struct hash"
        );
    }

    // ------------------------------------------------------------------ fuzz

    /// Guards: in a tree of any size every leaf proves; any altered sibling or leaf does not.
    function testFuzz_everyLeafProvesAndNoAlteredProofDoes(uint8 size, uint256 pick, uint256 seed, uint256 flip)
        public
    {
        uint256 n = bound(size, 1, 40);
        MarginAttestation[] memory atts = new MarginAttestation[](n);
        for (uint256 i; i < n; ++i) {
            address a = address(uint160(uint256(keccak256(abi.encode(seed, i)))));
            atts[i] =
                attestationFor(a, bytes32(0), int256(uint256(keccak256(abi.encode(seed, i, "v"))) % 1e24), i * 1e18, i);
        }
        post(atts);
        uint256 index = bound(pick, 0, n - 1);
        bytes memory p = proofOf(atts, index, address(registry));
        vm.prank(address(engine));
        int256 equity = ch.verifyMarginAttestation(atts[index].account, atts[index], p);
        assertEq(equity, atts[index].value, "no cash: equity is the attested value");
        if (p.length > 64) {
            // alter one sibling byte
            uint256 at = bound(flip, 64, p.length - 1);
            p[at] = bytes1(uint8(p[at]) ^ 0x01);
            vm.prank(address(engine));
            vm.expectRevert(ISnapshotCommitments.InvalidProof.selector);
            ch.verifyMarginAttestation(atts[index].account, atts[index], p);
        }
        bytes memory honest = proofOf(atts, index, address(registry));
        MarginAttestation memory other = abi.decode(abi.encode(atts[index]), (MarginAttestation)); // a copy
        other.initialMargin = other.initialMargin + 1;
        vm.prank(address(engine));
        vm.expectRevert(ISnapshotCommitments.InvalidProof.selector);
        ch.verifyMarginAttestation(other.account, other, honest);
    }
}
