// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ClearinghouseFixture} from "../utils/ClearinghouseFixture.sol";
import {Clearinghouse} from "../../../contracts/core/Clearinghouse.sol";
import {
    IClearinghouse,
    MarginAttestation,
    Order,
    SnapshotHeartbeat
} from "../../../contracts/interfaces/IClearinghouse.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Digests} from "../utils/Digests.sol";

/// @notice The adversarial suite: every way an attestation can be wrong, each its own test.
///         The honest path is a 3-of-5 oracle; alice withdraws against an attestation of her
///         portfolio after she bought one perpetual from bob.
contract AttestationsTest is ClearinghouseFixture {
    using Digests for Clearinghouse;

    uint256 internal constant SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    function setUp() public {
        setUpClearinghouse(6, 5, 3);
        fund(alice, 10_000);
        fund(bob, 10_000);
        fill(
            order(bob, perpId, -1e18, 3_000e18, 1), bobKey, alice, 1e18, quote(-3_000e18, 1_000e18, 3_000e18, 1_000e18)
        );
    }

    function honest() internal view returns (MarginAttestation memory) {
        return attestation(alice, 3_000e18, 1_000e18, 800e18);
    }

    function withdrawAs(address who, MarginAttestation memory att, bytes memory sigs) internal {
        vm.prank(who);
        ch.withdraw(1e6, who, att, sigs);
    }

    function test_honestAttestationAccepted() public {
        MarginAttestation memory att = honest();
        withdrawAs(alice, att, oracleSign(att));
        assertEq(usdc.balanceOf(alice), 1e6, "withdrawn");
        assertEq(uint256(ch.latestSnapshotTime()), block.timestamp, "newest snapshot recorded");
    }

    function test_moreThanThresholdAccepted() public {
        MarginAttestation memory att = honest();
        withdrawAs(alice, att, oracleSignWith(att, keysSlice(0, 5)));
        assertEq(usdc.balanceOf(alice), 1e6, "5 of 5 accepted");
    }

    function test_forgedSignatureRejected() public {
        MarginAttestation memory att = honest();
        uint256[] memory keys = keysSlice(0, 3);
        keys[1] = 0xBAD; // an outsider's key in place of a signer's
        bytes memory sigs = oracleSignWith(att, _sortedByAddress(keys));
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.UnauthorizedSigner.selector, vm.addr(0xBAD)));
        ch.withdraw(1e6, alice, att, sigs);
    }

    function test_tamperedFieldRejected() public {
        MarginAttestation memory att = honest();
        bytes memory sigs = oracleSign(att);
        att.initialMargin = 1; // the trader lowers its requirement after signing
        vm.prank(alice);
        vm.expectRevert(); // signatures now recover to random addresses
        ch.withdraw(1e6, alice, att, sigs);
    }

    function test_duplicateSignerCountedTwiceRejected() public {
        MarginAttestation memory att = honest();
        uint256[] memory keys = new uint256[](3);
        keys[0] = oracleKeys[0];
        keys[1] = oracleKeys[1];
        keys[2] = oracleKeys[1];
        bytes memory sigs = oracleSignWith(att, keys);
        vm.prank(alice);
        vm.expectRevert(IClearinghouse.SignersNotAscending.selector);
        ch.withdraw(1e6, alice, att, sigs);
    }

    function test_unsortedSignersRejected() public {
        MarginAttestation memory att = honest();
        uint256[] memory keys = new uint256[](3);
        keys[0] = oracleKeys[2];
        keys[1] = oracleKeys[1];
        keys[2] = oracleKeys[0];
        bytes memory sigs = oracleSignWith(att, keys);
        vm.prank(alice);
        vm.expectRevert(IClearinghouse.SignersNotAscending.selector);
        ch.withdraw(1e6, alice, att, sigs);
    }

    function test_underThresholdRejected() public {
        MarginAttestation memory att = honest();
        bytes memory sigs = oracleSignWith(att, keysSlice(0, 2));
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.NotEnoughSignatures.selector, 2, 3));
        ch.withdraw(1e6, alice, att, sigs);
    }

    function test_malformedSignatureBytesRejected() public {
        MarginAttestation memory att = honest();
        bytes memory sigs = oracleSign(att);
        bytes memory cut = new bytes(sigs.length - 1);
        for (uint256 i; i < cut.length; ++i) {
            cut[i] = sigs[i];
        }
        // a length that is not a multiple of 65 is read as a Merkle proof, which must be 32-byte words
        vm.prank(alice);
        vm.expectRevert(IClearinghouse.MalformedProof.selector);
        ch.withdraw(1e6, alice, att, cut);
        // where only signatures are accepted, the same bytes are malformed signatures
        uint64 t = uint64(block.timestamp);
        bytes memory hb = signDigest(heartbeatDigest(t), oracleKeys);
        bytes memory hbCut = new bytes(hb.length - 1);
        for (uint256 i; i < hbCut.length; ++i) {
            hbCut[i] = hb[i];
        }
        vm.expectRevert(IClearinghouse.MalformedSignatures.selector);
        ch.postSnapshot(SnapshotHeartbeat(t), hbCut);
    }

    function test_expiredRejected() public {
        MarginAttestation memory att = honest();
        bytes memory sigs = oracleSign(att);
        vm.warp(block.timestamp + 61);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.AttestationExpired.selector, att.deadline));
        ch.withdraw(1e6, alice, att, sigs);
    }

    function test_staleSnapshotRejected() public {
        vm.warp(block.timestamp + 200); // the newest accepted snapshot is now 200 s old
        MarginAttestation memory att = honest();
        att.snapshotTime = uint64(block.timestamp - 121); // older than maxSnapshotAge = 120
        bytes memory sigs = oracleSign(att);
        vm.prank(alice);
        vm.expectRevert(
            abi.encodeWithSelector(IClearinghouse.SnapshotTooOld.selector, att.snapshotTime, block.timestamp - 120)
        );
        ch.withdraw(1e6, alice, att, sigs);
    }

    function test_olderThanNewestAcceptedRejected() public {
        // An attestation from a snapshot 60 s old is fine on its own (max age 120 s) ...
        vm.warp(block.timestamp + 100);
        MarginAttestation memory old = honest();
        old.snapshotTime = uint64(block.timestamp - 60);
        bytes memory oldSigs = oracleSign(old);
        // ... but once a newer snapshot was accepted, one older than it minus 30 s is not.
        MarginAttestation memory fresh = honest();
        withdrawAs(alice, fresh, oracleSign(fresh));
        MarginAttestation memory again = old;
        vm.prank(alice);
        vm.expectRevert(
            abi.encodeWithSelector(IClearinghouse.SnapshotTooOld.selector, again.snapshotTime, block.timestamp - 30)
        );
        ch.withdraw(1e6, alice, again, oldSigs);
    }

    function test_futureSnapshotRejected() public {
        MarginAttestation memory att = honest();
        att.snapshotTime = uint64(block.timestamp + 1);
        bytes memory sigs = oracleSign(att);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.SnapshotInFuture.selector, att.snapshotTime));
        ch.withdraw(1e6, alice, att, sigs);
    }

    function test_attestationForAnotherAccountRejected() public {
        // bob's (valid, signed) attestation used by alice
        MarginAttestation memory bobs = attestation(bob, -3_000e18, 1_000e18, 800e18);
        bytes memory sigs = oracleSign(bobs);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.WrongAccount.selector, alice, bob));
        ch.withdraw(1e6, alice, bobs, sigs);
    }

    function test_attestationForPreTradeStateRejected() public {
        // an attestation of alice's portfolio before a trade cannot back a withdrawal after it
        MarginAttestation memory before = honest();
        bytes memory sigs = oracleSign(before);
        fill(
            order(bob, perpId, -1e18, 3_000e18, 2), bobKey, alice, 1e18, quote(-6_000e18, 2_000e18, 6_000e18, 2_000e18)
        );
        bytes32 current = ch.stateHashOf(alice);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.WrongPortfolioState.selector, current, before.stateHash));
        ch.withdraw(1e6, alice, before, sigs);
    }

    function test_attestationForAnotherTradeRejected() public {
        // The oracle attested alice's state after buying 1 more perp; she fills 5 instead.
        Order memory o = order(bob, perpId, -10e18, 3_000e18, 3);
        (MarginAttestation memory ma, MarginAttestation memory ta) =
            postTradeAttestations(o, alice, 1e18, quote(-6_000e18, 100e18, 6_000e18, 100e18));
        bytes memory makerSig = signOrder(o, bobKey);
        bytes memory maSigs = oracleSign(ma);
        bytes memory taSigs = oracleSign(ta);
        vm.prank(alice);
        vm.expectRevert(); // the post-trade state hash differs for a 5-contract fill
        ch.fillOrder(o, makerSig, 5e18, ma, maSigs, ta, taSigs);
        // ... and the matching fill goes through
        vm.prank(alice);
        ch.fillOrder(o, makerSig, 1e18, ma, maSigs, ta, taSigs);
        assertEq(ch.positionOf(alice, perpId), 2e18, "filled the attested size");
    }

    function test_attestationForAnotherChainRejected() public {
        MarginAttestation memory att = honest();
        uint256 chainId = block.chainid;
        vm.chainId(chainId + 1);
        bytes memory foreign = oracleSign(att); // signed under the other chain's domain
        vm.chainId(chainId);
        vm.prank(alice);
        vm.expectRevert(); // recovers to addresses outside the signer set
        ch.withdraw(1e6, alice, att, foreign);
    }

    function test_attestationForAnotherContractRejected() public {
        Clearinghouse other = deployClearinghouse(IERC20(address(usdc)), oracleKeys, 3);
        MarginAttestation memory att = honest();
        bytes memory foreign = signDigest(other.marginAttestationDigest(att), oracleKeys);
        vm.prank(alice);
        vm.expectRevert();
        ch.withdraw(1e6, alice, att, foreign);
        // the same signatures are valid where they were made for
        assertTrue(other.marginAttestationDigest(att) != ch.marginAttestationDigest(att), "domains differ");
    }

    function test_malleableHighSSignatureRejected() public {
        MarginAttestation memory att = honest();
        bytes memory sigs = oracleSign(att);
        // flip the first signature to its (r, n − s, v ^ 1) twin: valid for ecrecover, not for ECDSA
        bytes32 s;
        uint8 v;
        assembly {
            s := mload(add(sigs, 64))
            v := byte(0, mload(add(sigs, 96)))
        }
        bytes32 highS = bytes32(SECP256K1_N - uint256(s));
        uint8 flippedV = v == 27 ? 28 : 27;
        assembly {
            mstore(add(sigs, 64), highS)
            mstore8(add(sigs, 96), flippedV)
        }
        vm.prank(alice);
        vm.expectRevert(IClearinghouse.InvalidSignature.selector);
        ch.withdraw(1e6, alice, att, sigs);
    }

    function test_removedSignerRejected() public {
        // governance replaces oracleKeys[0] by a new signer
        uint256 newKey = 0x5EED;
        uint256[] memory next = new uint256[](5);
        next[0] = newKey;
        for (uint256 i = 1; i < 5; ++i) {
            next[i] = oracleKeys[i];
        }
        next = _sortedByAddress(next);
        address[] memory addrs = new address[](5);
        for (uint256 i; i < 5; ++i) {
            addrs[i] = vm.addr(next[i]);
        }
        vm.prank(owner);
        ch.scheduleSignerSet(addrs, 3);
        vm.warp(block.timestamp + TIMELOCK);
        ch.executeSignerSet();

        MarginAttestation memory att = honest();
        bytes memory sigs = oracleSignWith(att, keysSlice(0, 3)); // includes the removed signer
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.UnauthorizedSigner.selector, vm.addr(oracleKeys[0])));
        ch.withdraw(1e6, alice, att, sigs);
        // the new set works
        withdrawAs(alice, att, oracleSignWith(att, _firstThree(next)));
    }

    function test_wrongParamsVersionRejected() public {
        MarginAttestation memory att = honest();
        att.paramsVersion = 2;
        bytes memory sigs = oracleSign(att);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.WrongParamsVersion.selector, uint32(1), uint32(2)));
        ch.withdraw(1e6, alice, att, sigs);
    }

    function testFuzz_snapshotWindow(uint32 age) public {
        age = uint32(bound(age, 0, 400));
        vm.warp(block.timestamp + 500);
        MarginAttestation memory att = honest();
        att.snapshotTime = uint64(block.timestamp - age);
        bytes memory sigs = oracleSign(att);
        vm.prank(alice);
        if (age > 120) vm.expectRevert();
        ch.withdraw(1e6, alice, att, sigs);
    }

    function _firstThree(uint256[] memory keys) internal pure returns (uint256[] memory out) {
        out = new uint256[](3);
        for (uint256 i; i < 3; ++i) {
            out[i] = keys[i];
        }
    }

    function _sortedByAddress(uint256[] memory keys) internal pure returns (uint256[] memory) {
        for (uint256 i = 1; i < keys.length; ++i) {
            for (uint256 j = i; j > 0 && vm.addr(keys[j - 1]) > vm.addr(keys[j]); --j) {
                (keys[j - 1], keys[j]) = (keys[j], keys[j - 1]);
            }
        }
        return keys;
    }
}
