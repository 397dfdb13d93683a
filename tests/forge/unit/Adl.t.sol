// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {LiquidationFixture} from "../utils/LiquidationFixture.sol";
import {IClearinghouse, MarginAttestation} from "../../../contracts/interfaces/IClearinghouse.sol";
import {
    AdlAttestation,
    AdlFill,
    ILiquidationEngine,
    LiquidationRequest
} from "../../../contracts/interfaces/ILiquidationEngine.sol";

/// @notice Auto-deleveraging. Alice is long 10 ETH perpetuals at 3,000 (6 sold by bob, 4 by
///         carol); ETH crashes to 1,000 and her deficit (~10,015) exceeds the fund (100).
contract AdlTest is LiquidationFixture {
    uint256 internal constant MARK = 1_000e18;

    function setUp() public {
        openAliceLong(100);
    }

    function plan(address[] memory ranked)
        internal
        view
        returns (AdlAttestation memory att, bytes memory sigs, AdlFill[] memory fills)
    {
        return alicePlan(MARK, ranked);
    }

    function flagAlice() internal {
        MarginAttestation memory att = attestation(alice, int256(10 * MARK), 1_600e18 * 5 / 4, 1_600e18);
        engine.flagBankruptcy(alice, att, oracleSign(att));
    }

    function test_liquidationRefusedWhenTheFundCannotCover() public {
        LiquidationRequest[] memory reqs = new LiquidationRequest[](1);
        reqs[0] = request(alice, int256(10 * MARK), 1_600e18);
        (MarginAttestation memory katt, bytes memory ksigs) = keeperNow(0, 0);
        vm.prank(keeper);
        vm.expectEmit();
        emit ILiquidationEngine.LiquidationSkipped(alice, 3);
        vm.expectRevert(ILiquidationEngine.NothingLiquidated.selector);
        engine.liquidate(reqs, katt, ksigs);
    }

    function test_flagGatesWithdrawalsUntilDeleveraged() public {
        flagAlice();
        assertTrue(ch.withdrawalsGated(), "gated");
        MarginAttestation memory none;
        vm.prank(keeper);
        vm.expectRevert(IClearinghouse.WithdrawalsGatedByBadDebt.selector);
        ch.withdraw(1e6, keeper, none, "");
        (AdlAttestation memory att, bytes memory sigs, AdlFill[] memory fills) = plan(carolThenBob());
        engine.deleverage(att, sigs, fills);
        assertFalse(ch.withdrawalsGated(), "resolved");
        vm.prank(keeper);
        ch.withdraw(1e6, keeper, none, "");
    }

    function test_deleverageClosesExactlyTheBankruptSizeInRankOrder() public {
        int256 deficit = -(ch.cashOf(alice) + int256(10 * MARK));
        int256 bobCash = ch.cashOf(bob);
        int256 carolCash = ch.cashOf(carol);
        (AdlAttestation memory att, bytes memory sigs, AdlFill[] memory fills) = plan(carolThenBob());
        engine.deleverage(att, sigs, fills);

        assertEq(ch.positionOf(alice, perpId), 0, "alice flat");
        assertEq(ch.positionOf(carol, perpId), 0, "carol (rank 0) closed her 4");
        assertEq(ch.positionOf(bob, perpId), 0, "bob (rank 1) closed his 6");
        assertGe(ch.cashOf(alice), 0, "no bad debt left");
        assertLt(ch.cashOf(alice), 10, "to the wei");
        assertEq(fundContract.fundBalance(), 0, "fund paid all it had first");
        // The counterparties bought back at the bankruptcy price: mark + haircut per contract.
        uint256 haircut = uint256(deficit) - 100e18;
        int256 bobPaid = bobCash - ch.cashOf(bob);
        int256 carolPaid = carolCash - ch.cashOf(carol);
        assertApproxEqAbs(uint256(bobPaid), 6 * MARK + haircut * 6 / 10, 10, "bob: 6 x (mark + share)");
        assertApproxEqAbs(uint256(carolPaid), 4 * MARK + haircut * 4 / 10, 10, "carol: 4 x (mark + share)");
        assertEq(usdc.balanceOf(address(ch)) * 1e12, uint256(ch.totalCash()) + ch.protocolFees(), "custody");
    }

    function test_forgedQueueRejected() public {
        (AdlAttestation memory att, bytes memory sigs, AdlFill[] memory fills) = plan(carolThenBob());
        // swap in a queue that puts bob first, keeping the oracle's signatures
        address[] memory forged = new address[](2);
        forged[0] = bob;
        forged[1] = carol;
        (bytes32 root, AdlFill[] memory forgedFills) = queue(0, perpId, forged);
        att.queueRoots[0] = root;
        fills = forgedFills;
        vm.expectRevert(); // signatures no longer match the attestation
        engine.deleverage(att, sigs, fills);
    }

    function test_skippingAHigherRankedAccountRejected() public {
        (AdlAttestation memory att, bytes memory sigs, AdlFill[] memory fills) = plan(carolThenBob());
        AdlFill[] memory skip = new AdlFill[](1);
        skip[0] = fills[1]; // bob (rank 1) before carol (rank 0)
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.AdlRankOutOfOrder.selector, 0, 0, 1));
        engine.deleverage(att, sigs, skip);
    }

    function test_deleveragingMoreThanTheBankruptSizeRejected() public {
        address[] memory ranked = new address[](3);
        ranked[0] = carol;
        ranked[1] = bob;
        ranked[2] = keeper;
        (AdlAttestation memory att, bytes memory sigs, AdlFill[] memory fills) = plan(ranked);
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.AdlOvershoot.selector, 0));
        engine.deleverage(att, sigs, fills);
    }

    /// A deleveraging that covers part of the position leaves the rest with the account, flagged
    /// (nobody can make it revert by moving away); one that moves nothing is refused.
    function test_partialDeleveragingLeavesTheRestFlagged() public {
        (AdlAttestation memory att, bytes memory sigs, AdlFill[] memory fills) = plan(carolThenBob());
        AdlFill[] memory first = new AdlFill[](1);
        first[0] = fills[0];
        engine.deleverage(att, sigs, first);
        assertEq(ch.positionOf(alice, perpId), 6e18, "carol's 4 taken, 6 left");
        assertTrue(ch.flagged(alice), "the rest stays flagged for the next plan");
        assertTrue(ch.withdrawalsGated(), "gated");
        (att, sigs, fills) = plan(carolThenBob()); // carol has nothing left on the opposite side
        AdlFill[] memory none = new AdlFill[](1);
        none[0] = fills[0];
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.AdlIncomplete.selector, perpId, 6e18));
        engine.deleverage(att, sigs, none);
    }

    function test_counterpartyOutsideTheQueueRejected() public {
        (AdlAttestation memory att, bytes memory sigs, AdlFill[] memory fills) = plan(carolThenBob());
        fills[0].counterparty = keeper;
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.AdlInvalidProof.selector, 0, 0));
        engine.deleverage(att, sigs, fills);
    }

    function test_adlRefusedWhenTheFundCanCover() public {
        seedFund(20_000);
        (AdlAttestation memory att, bytes memory sigs, AdlFill[] memory fills) = plan(carolThenBob());
        vm.expectRevert(); // FundCanCover
        engine.deleverage(att, sigs, fills);
    }

    function test_adlLegsMustBeTheWholePortfolio() public {
        (AdlAttestation memory att,, AdlFill[] memory fills) = plan(carolThenBob());
        uint256[] memory ids = new uint256[](0);
        uint256[] memory marks = new uint256[](0);
        bytes32[] memory roots = new bytes32[](0);
        (AdlAttestation memory empty, bytes memory emptySigs) = adlAttestation(alice, ids, marks, roots);
        vm.expectRevert(ILiquidationEngine.AdlLegsMismatch.selector);
        engine.deleverage(empty, emptySigs, fills);
        att; // the full plan is the only accepted one
    }

    function test_flagRequiresBankruptcyBeyondTheFund() public {
        MarginAttestation memory bobAtt = attestation(bob, -6_000e18, 1_000e18, 800e18);
        bytes memory bobSigs = oracleSign(bobAtt);
        vm.expectRevert(); // NotBankrupt
        engine.flagBankruptcy(bob, bobAtt, bobSigs);
        seedFund(20_000);
        MarginAttestation memory att = attestation(alice, int256(10 * MARK), 2_000e18, 1_600e18);
        bytes memory sigs = oracleSign(att);
        vm.expectRevert(); // FundCanCover
        engine.flagBankruptcy(alice, att, sigs);
    }
}
