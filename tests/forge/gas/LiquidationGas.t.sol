// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {LiquidationFixture} from "../utils/LiquidationFixture.sol";
import {
    InstrumentKind,
    MarginAttestation,
    RiskConfig,
    SettlementPrice
} from "../../../contracts/interfaces/IClearinghouse.sol";
import {AdlAttestation, AdlFill, LiquidationRequest} from "../../../contracts/interfaces/ILiquidationEngine.sol";
import {SnapshotCommitments} from "../../../contracts/core/SnapshotCommitments.sol";
import {Clearinghouse} from "../../../contracts/core/Clearinghouse.sol";
import {MerkleBuilder} from "../utils/MerkleBuilder.sol";
import {Digests} from "../utils/Digests.sol";

/// @notice Gas of the waterfall's paths, written to snapshots/LiquidationEngine.json.
/// @dev Isolated transactions (FOUNDRY_PROFILE=gas); a 3-of-5 oracle; position cap raised to 32.
contract LiquidationGas is LiquidationFixture {
    using Digests for Clearinghouse;

    uint256 internal constant BOOK = 1_024; // accounts in the committed book

    function defaultConfig() internal pure override returns (RiskConfig memory c) {
        c = super.defaultConfig();
        c.maxPositions = 32;
    }

    function setUp() public {
        setUpLiquidation(5, 3);
        fund(bob, 1_000_000);
        fund(keeper, 1_000_000);
        seedFund(100_000);
    }

    /// alice holds one contract of each of n instruments, bought from bob at 10.
    function openBook(address account, uint256 key, uint256 n, uint256 firstNonce)
        internal
        returns (uint256[] memory ids)
    {
        ids = new uint256[](n);
        ids[0] = perpId;
        vm.startPrank(owner);
        for (uint256 i = 1; i < n; ++i) {
            ids[i] = ch.listInstrument(ETH, InstrumentKind.Call, (2_000 + 50 * i) * 1e18, expiry);
        }
        vm.stopPrank();
        for (uint256 i; i < n; ++i) {
            fill(
                order(bob, ids[i], -1e18, 10e18, firstNonce + i),
                bobKey,
                account,
                1e18,
                quote(0, 0, int256(10e18 * (i + 1)), 0)
            );
        }
        key;
    }

    function liquidateBook(uint256 n, string memory label, bool keeperHolds) internal {
        fund(alice, 1_000);
        uint256[] memory ids = openBook(alice, aliceKey, n, 1);
        if (keeperHolds) {
            for (uint256 i; i < n; ++i) {
                fill(order(bob, ids[i], -1e18, 10e18, 1_000 + i), bobKey, keeper, 1e18, quote(0, 0, 0, 0));
            }
        }
        // attested: value 10 per contract, MM 2,000 > equity ≈ 1,000 → a partial liquidation
        LiquidationRequest[] memory reqs = new LiquidationRequest[](1);
        reqs[0] = request(alice, int256(10e18 * n), 2_000e18);
        (MarginAttestation memory katt, bytes memory ksigs) = keeperNow(0, 0);
        vm.prank(keeper);
        engine.liquidate(reqs, katt, ksigs);
        vm.snapshotGasLastCall("LiquidationEngine", label);
        assertGt(ch.positionOf(keeper, ids[0]), 0, "keeper took a slice");
    }

    function test_gas_liquidate1() public {
        liquidateBook(1, "liquidate 1 position (keeper new to it)", false);
    }

    function test_gas_liquidate8() public {
        liquidateBook(8, "liquidate 8 positions (keeper new to them)", false);
    }

    function test_gas_liquidate8KeeperHolds() public {
        liquidateBook(8, "liquidate 8 positions (keeper already holds them)", true);
    }

    function test_gas_liquidateMax() public {
        liquidateBook(32, "liquidate 32 positions, the cap (keeper new to them)", false);
    }

    function test_gas_batchOf10() public {
        LiquidationRequest[] memory reqs = new LiquidationRequest[](10);
        for (uint256 k; k < 10; ++k) {
            uint256 key = 0xACC0 + k;
            address a = vm.addr(key);
            fund(a, 1_000);
            fill(order(bob, perpId, -1e18, 3_000e18, 100 + k), bobKey, a, 1e18, quote(0, 0, 3_000e18, 600e18));
        }
        for (uint256 k; k < 10; ++k) {
            address a = vm.addr(0xACC0 + k);
            reqs[k] = request(a, 2_500e18, 2_000e18); // equity ≈ 500 < MM 2,000
        }
        (MarginAttestation memory katt, bytes memory ksigs) = keeperNow(0, 0);
        vm.prank(keeper);
        engine.liquidate(reqs, katt, ksigs);
        vm.snapshotGasLastCall("LiquidationEngine", "liquidate a batch of 10 accounts (1 position each)");
    }

    // ------------------------------------------------------------------ snapshot commitments

    /// @dev A fresh deployment with a commitment registry; `n` accounts long one perpetual from
    ///      3,000 on 1,000 of collateral, attested at equity ≈ 500 < MM 2,000; returns the leaves
    ///      of a BOOK-account tree (the rest are other accounts' leaves) with those first and the
    ///      keeper's last.
    function committedBook(uint256 n)
        internal
        returns (SnapshotCommitments registry, MarginAttestation[] memory atts, bytes32[] memory leaves)
    {
        setUpLiquidation(5, 3);
        registry = new SnapshotCommitments(address(ch));
        vm.prank(owner);
        ch.bootstrapEngine(address(registry));
        fund(bob, 1_000_000);
        fund(keeper, 1_000_000);
        seedFund(100_000);
        atts = new MarginAttestation[](n + 1);
        leaves = new bytes32[](BOOK);
        for (uint256 k; k < n; ++k) {
            address a = vm.addr(0xACC0 + k);
            fund(a, 1_000);
            fill(order(bob, perpId, -1e18, 3_000e18, 100 + k), bobKey, a, 1e18, quote(0, 0, 3_000e18, 600e18));
        }
        for (uint256 k; k < n; ++k) {
            atts[k] = attestation(vm.addr(0xACC0 + k), 2_500e18, 2_500e18, 2_000e18);
            leaves[k] = Digests.leaf(atts[k]);
        }
        atts[n] = attestation(keeper, 0, 0, 0);
        leaves[BOOK - 1] = Digests.leaf(atts[n]);
        for (uint256 k = n; k < BOOK - 1; ++k) {
            leaves[k] = keccak256(abi.encode("another account", k));
        }
    }

    function test_gas_postCommitment() public {
        (SnapshotCommitments registry,, bytes32[] memory leaves) = committedBook(1);
        postRoot(registry, MerkleBuilder.root(leaves), BOOK, keysSlice(0, 3));
        vm.snapshotGasLastCall("LiquidationEngine", "postCommitment (root of 1,024 accounts x 3 sigs)");
    }

    function liquidateWithProofs(uint256 n, string memory label) internal {
        (SnapshotCommitments registry, MarginAttestation[] memory atts, bytes32[] memory leaves) = committedBook(n);
        postRoot(registry, MerkleBuilder.root(leaves), BOOK, keysSlice(0, 3));
        LiquidationRequest[] memory reqs = new LiquidationRequest[](n);
        for (uint256 k; k < n; ++k) {
            reqs[k] = LiquidationRequest(atts[k].account, atts[k], proofBytes(address(registry), leaves, k), WAD);
        }
        bytes memory kproof = proofBytes(address(registry), leaves, BOOK - 1);
        vm.prank(keeper);
        engine.liquidate(reqs, atts[n], kproof);
        vm.snapshotGasLastCall("LiquidationEngine", label);
        assertGt(ch.positionOf(keeper, perpId), 0, "keeper took slices");
    }

    function test_gas_liquidate1WithProofs() public {
        liquidateWithProofs(1, "liquidate 1 position with proofs (1,024-account root)");
    }

    function test_gas_batchOf10WithProofs() public {
        liquidateWithProofs(10, "liquidate a batch of 10 accounts with proofs (1,024-account root)");
    }

    function test_gas_bankruptcyCoveredByFund() public {
        fund(alice, 1_000);
        fill(order(bob, perpId, -1e18, 3_000e18, 1), bobKey, alice, 1e18, quote(0, 0, 3_000e18, 600e18));
        // value 1,500 against cash −2,000: equity −500, covered by the fund
        LiquidationRequest[] memory reqs = new LiquidationRequest[](1);
        reqs[0] = request(alice, 1_500e18, 240e18);
        (MarginAttestation memory katt, bytes memory ksigs) = keeperNow(0, 0);
        vm.prank(keeper);
        engine.liquidate(reqs, katt, ksigs);
        vm.snapshotGasLastCall("LiquidationEngine", "liquidate a bankrupt account, fund covers the deficit");
        assertGe(ch.cashOf(alice), 0, "covered");
    }

    function test_gas_adlStep() public {
        // drain the fund to 100: redeploy with a small fund
        setUpLiquidation(5, 3);
        fund(bob, 1_000_000);
        fund(carol, 1_000_000);
        fund(alice, 1_000);
        seedFund(100);
        fill(order(bob, perpId, -6e18, 3_000e18, 1), bobKey, alice, 6e18, quote(0, 0, 18_000e18, 0));
        fill(order(carol, perpId, -4e18, 3_000e18, 1), carolKey, alice, 4e18, quote(0, 0, 30_000e18, 0));
        uint256[] memory ids = new uint256[](1);
        ids[0] = perpId;
        uint256[] memory marks = new uint256[](1);
        marks[0] = 1_000e18;
        bytes32[] memory roots = new bytes32[](1);
        address[] memory ranked = new address[](2);
        ranked[0] = carol;
        ranked[1] = bob;
        AdlFill[] memory fills;
        (roots[0], fills) = queue(0, perpId, ranked);
        (AdlAttestation memory att, bytes memory sigs) = adlAttestation(alice, ids, marks, roots);
        engine.deleverage(att, sigs, fills);
        vm.snapshotGasLastCall("LiquidationEngine", "deleverage 1 position against 2 ranked counterparties");
        assertEq(ch.positionOf(alice, perpId), 0, "deleveraged");
    }

    /// alice long 10 perpetuals at 3,000 (6 from bob, 4 from carol) on a deposit of 1,000, and a
    /// fund of 100: at 1,000 she is bankrupt by ~21,000, beyond the fund.
    function bankruptAlice() internal {
        setUpLiquidation(5, 3);
        fund(bob, 1_000_000);
        fund(carol, 1_000_000);
        fund(alice, 1_000);
        seedFund(100);
        fill(order(bob, perpId, -6e18, 3_000e18, 1), bobKey, alice, 6e18, quote(0, 0, 18_000e18, 0));
        fill(order(carol, perpId, -4e18, 3_000e18, 1), carolKey, alice, 4e18, quote(0, 0, 30_000e18, 0));
    }

    function test_gas_clearFlagWithPositions() public {
        bankruptAlice();
        MarginAttestation memory att = attestation(alice, 10_000e18, 2_000e18, 1_600e18);
        engine.flagBankruptcy(alice, att, oracleSign(att));
        // the price recovers: equity ≥ 0 again
        MarginAttestation memory recovered = attestation(alice, 30_000e18, 6_000e18, 4_800e18);
        engine.clearFlag(alice, recovered, oracleSign(recovered));
        vm.snapshotGasLastCall("LiquidationEngine", "clearFlag (with positions, attestation x 3 sigs)");
        assertFalse(ch.withdrawalsGated(), "cleared");
    }

    function test_gas_clearFlagWithoutPositions() public {
        bankruptAlice();
        // a queue that can carry only 100 of the haircut: alice ends flat, flagged, in deficit
        uint256[] memory ids = new uint256[](1);
        ids[0] = perpId;
        uint256[] memory marks = new uint256[](1);
        marks[0] = 1_000e18;
        bytes32[] memory roots = new bytes32[](1);
        address[] memory ranked = new address[](2);
        ranked[0] = carol;
        ranked[1] = bob;
        int256[] memory values = new int256[](2);
        values[0] = 50e18 - ch.cashOf(carol);
        values[1] = 50e18 - ch.cashOf(bob);
        AdlFill[] memory fills;
        (roots[0], fills) = queueWithValues(0, perpId, ranked, values);
        (AdlAttestation memory att, bytes memory sigs) = adlAttestation(alice, ids, marks, roots);
        engine.deleverage(att, sigs, fills);
        assertTrue(ch.flagged(alice) && ch.openInstruments(alice).length == 0, "flagged, flat");
        seedFund(30_000);
        MarginAttestation memory none;
        engine.clearFlag(alice, none, "");
        vm.snapshotGasLastCall("LiquidationEngine", "clearFlag (no positions, the fund pays the deficit)");
        assertGe(ch.cashOf(alice), 0, "paid");
    }

    /// The 3,000 calls at ETH 4,000 (intrinsic 1,000): alice long 2 (one from bob, one from carol);
    /// carol (deposit 200) cannot pay her 1,000; the fund (100) pays part, alice's payout the rest.
    function test_gas_settle() public {
        setUpLiquidation(5, 3);
        fund(bob, 1_000_000);
        seedFund(100);
        fund(alice, 10_000);
        fund(carol, 200);
        fill(order(bob, callId, -1e18, 100e18, 1), bobKey, alice, 1e18, quote(0, 0, 0, 0));
        fill(order(carol, callId, -1e18, 100e18, 1), carolKey, alice, 1e18, quote(0, 0, 0, 0));
        vm.warp(expiry);
        SettlementPrice memory sp =
            SettlementPrice({underlying: ETH, expiry: expiry, price: 4_000e18, snapshotTime: expiry});
        ch.postSettlementPrice(sp, oracleSignPrice(sp));
        uint256[] memory ids = new uint256[](1);
        ids[0] = callId;
        engine.settle(bob, ids);
        vm.snapshotGasLastCall("LiquidationEngine", "settle a payer (1 option)");
        engine.settle(carol, ids);
        vm.snapshotGasLastCall("LiquidationEngine", "settle a payer with a deficit (fund pays part, the rest shared)");
        engine.settle(alice, ids);
        vm.snapshotGasLastCall("LiquidationEngine", "settle a long (1 option, less its shortfall share)");
        assertEq(ch.openInstruments(alice).length, 0, "settled");
    }
}
