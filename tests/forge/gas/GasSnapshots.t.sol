// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ClearinghouseFixture} from "../utils/ClearinghouseFixture.sol";
import {ClearinghouseHarness} from "./ClearinghouseHarness.sol";
import {MarginAttestation, Order, SnapshotHeartbeat} from "../../../contracts/interfaces/IClearinghouse.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Digests} from "../utils/Digests.sol";
import {Clearinghouse} from "../../../contracts/core/Clearinghouse.sol";

/// @notice Gas of the user-facing paths, written to snapshots/Clearinghouse.json.
/// @dev Run in isolation (`FOUNDRY_PROFILE=gas`): every call is its own transaction, so storage
///      starts cold as it would on a chain. The oracle is 3-of-5 unless a test says otherwise.
contract GasSnapshots is ClearinghouseFixture {
    using Digests for Clearinghouse;

    function setUp() public {
        setUpClearinghouse(6, 5, 3);
        fund(alice, 100_000);
        fund(bob, 100_000);
    }

    function test_gas_deposit() public {
        usdc.mint(carol, 1_000e6);
        vm.prank(carol);
        usdc.approve(address(ch), 1_000e6);
        vm.prank(carol);
        ch.deposit(carol, 1_000e6);
        vm.snapshotGasLastCall("Clearinghouse", "deposit (new account)");
        usdc.mint(alice, 1_000e6);
        vm.prank(alice);
        usdc.approve(address(ch), 1_000e6);
        vm.prank(alice);
        ch.deposit(alice, 1_000e6);
        vm.snapshotGasLastCall("Clearinghouse", "deposit (existing account)");
    }

    function test_gas_withdrawWithoutPositions() public {
        MarginAttestation memory none;
        vm.prank(alice);
        ch.withdraw(1_000e6, alice, none, "");
        vm.snapshotGasLastCall("Clearinghouse", "withdraw (no positions, no attestation)");
    }

    function test_gas_tradeAndWithdrawWithAttestation() public {
        Order memory o = order(bob, perpId, -1e18, 3_000e18, 1);
        (MarginAttestation memory ma, MarginAttestation memory ta) =
            postTradeAttestations(o, alice, 1e18, quote(-3_000e18, 1_000e18, 3_000e18, 1_000e18));
        bytes memory makerSig = signOrder(o, bobKey);
        bytes memory maSigs = oracleSign(ma);
        bytes memory taSigs = oracleSign(ta);
        vm.prank(alice);
        ch.fillOrder(o, makerSig, 1e18, ma, maSigs, ta, taSigs);
        vm.snapshotGasLastCall("Clearinghouse", "fillOrder (opens 2 positions, 2 attestations x 3 sigs)");

        Order memory o2 = order(bob, perpId, -1e18, 3_000e18, 2);
        (ma, ta) = postTradeAttestations(o2, alice, 1e18, quote(-6_000e18, 2_000e18, 6_000e18, 2_000e18));
        makerSig = signOrder(o2, bobKey);
        maSigs = oracleSign(ma);
        taSigs = oracleSign(ta);
        vm.prank(alice);
        ch.fillOrder(o2, makerSig, 1e18, ma, maSigs, ta, taSigs);
        vm.snapshotGasLastCall("Clearinghouse", "fillOrder (adds to 2 positions, 2 attestations x 3 sigs)");

        MarginAttestation memory att = attestation(alice, 6_000e18, 2_000e18, 1_600e18);
        bytes memory sigs = oracleSign(att);
        vm.prank(alice);
        ch.withdraw(1_000e6, alice, att, sigs);
        vm.snapshotGasLastCall("Clearinghouse", "withdraw (with attestation x 3 sigs)");
    }

    function test_gas_verificationBySignerCount() public {
        uint256[5] memory counts = [uint256(1), 2, 3, 4, 5];
        for (uint256 k; k < counts.length; ++k) {
            uint256 m = counts[k];
            address[] memory signerAddrs = new address[](m);
            uint256[] memory keys = keysSlice(0, m);
            for (uint256 i; i < m; ++i) {
                signerAddrs[i] = vm.addr(keys[i]);
            }
            ClearinghouseHarness h =
                new ClearinghouseHarness(IERC20(address(usdc)), owner, defaultConfig(), signerAddrs, uint8(m));
            MarginAttestation memory att = attestationFor(alice, bytes32(0), 0, 0, 0);
            bytes memory sigs = signDigest(Clearinghouse(address(h)).marginAttestationDigest(att), keys);
            h.verifyOnly(att, sigs);
            vm.snapshotGasLastCall(
                "AttestationVerifier", string.concat("verify ", vm.toString(m), "-of-", vm.toString(m))
            );
        }
    }

    function test_gas_postSnapshot() public {
        vm.warp(block.timestamp + 30);
        uint64 t = uint64(block.timestamp);
        bytes memory sigs = signDigest(heartbeatDigest(t), keysSlice(0, 3));
        ch.postSnapshot(SnapshotHeartbeat(t), sigs);
        vm.snapshotGasLastCall("Clearinghouse", "postSnapshot (heartbeat x 3 sigs)");
    }
}
