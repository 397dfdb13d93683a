// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {LiquidationFixture} from "../utils/LiquidationFixture.sol";
import {IClearinghouse, MarginAttestation} from "../../../contracts/interfaces/IClearinghouse.sol";
import {ILiquidationEngine, LiquidationRequest} from "../../../contracts/interfaces/ILiquidationEngine.sol";
import {IInsuranceFund} from "../../../contracts/interfaces/IInsuranceFund.sol";

/// @notice Partial liquidation and fund-covered bankruptcy. Alice is long 10 ETH perpetuals
///         bought at 3,000 from bob; the oracle's model here: value = 10 × mark, MM = 16% and
///         IM = 20% of notional. Config: buffer 10%, bonus 10%, insurance fee 5%, dust 10.
contract LiquidationTest is LiquidationFixture {
    function setUp() public {
        setUpLiquidation(3, 2);
        fund(alice, 10_000);
        fund(bob, 100_000);
        fund(keeper, 100_000);
        seedFund(50_000);
        aliceBuysTenPerpsFromBob();
    }

    function mmAt(uint256 mark) internal pure returns (uint256) {
        return 10 * mark * 16 / 100;
    }

    function equityAt(uint256 mark) internal view returns (int256) {
        return ch.cashOf(alice) + int256(10 * mark);
    }

    function test_healthyAccountCannotBeLiquidated() public {
        uint256 mark = 2_500e18; // equity 4,985 ≥ MM 4,000
        assertGe(equityAt(mark), int256(mmAt(mark)), "healthy");
        LiquidationRequest[] memory reqs = new LiquidationRequest[](1);
        reqs[0] = request(alice, int256(10 * mark), mmAt(mark));
        (MarginAttestation memory katt, bytes memory ksigs) = keeperNow(0, 0);
        vm.prank(keeper);
        vm.expectEmit();
        emit ILiquidationEngine.LiquidationSkipped(alice, 2);
        vm.expectRevert(ILiquidationEngine.NothingLiquidated.selector);
        engine.liquidate(reqs, katt, ksigs);
    }

    function test_partialLiquidationRestoresTargetWithMinimalFraction() public {
        uint256 mark = 2_300e18;
        int256 equity = equityAt(mark);
        uint256 mm = mmAt(mark);
        assertLt(uint256(equity), mm, "below MM");
        (uint256 f, uint256 bonus, uint256 fee) = engine.liquidationTerms(equity, mm);
        assertLt(f, 1e18, "partial");
        uint256 fundBefore = fundContract.fundBalance();

        liquidateOne(alice, int256(10 * mark), mm, int256(3 * mark), 2_000e18);

        int256 left = ch.positionOf(alice, perpId);
        int256 taken = ch.positionOf(keeper, perpId);
        assertEq(left + taken, 10e18, "slice moved to the keeper");
        assertEq(uint256(taken), (10e18 * f + 1e18 - 1) / 1e18, "slice = ceil(size x f)");
        // After: equity ≥ (1 + buffer) × MM of what is left (MM is homogeneous).
        int256 equityAfter = ch.cashOf(alice) + left * int256(mark) / 1e18;
        uint256 mmAfter = uint256(left) * mark / 1e18 * 16 / 100;
        assertGe(equityAfter + 2, int256(mmAfter * 11 / 10), "restored to target");
        // Minimal: one part in a million less would not have restored it.
        uint256 smaller = f - f / 1_000_000;
        int256 eSmaller = equity - int256((bonus + fee) * smaller / f);
        assertLt(eSmaller, int256(mm * (1e18 - smaller) / 1e18 * 11 / 10), "a smaller slice falls short");
        assertEq(
            fundContract.fundBalance() - fundBefore, fee / 1e12 * 1e12, "fee paid to the fund, in whole token units"
        );
        assertGt(fee, 0, "fee charged");
        // conservation across the clearinghouse and the fund
        assertEq(usdc.balanceOf(address(ch)) * 1e12, uint256(ch.totalCash()) + ch.protocolFees(), "ch custody");
        assertEq(usdc.balanceOf(address(fundContract)) * 1e12, fundContract.fundBalance(), "fund custody");
    }

    function test_maxFractionProtectsTheLiquidator() public {
        uint256 mark = 2_300e18;
        LiquidationRequest[] memory reqs = new LiquidationRequest[](1);
        reqs[0] = request(alice, int256(10 * mark), mmAt(mark));
        reqs[0].maxFraction = 0.1e18;
        (uint256 f,,) = engine.liquidationTerms(equityAt(mark), mmAt(mark));
        (MarginAttestation memory katt, bytes memory ksigs) = keeperNow(0, 0);
        vm.prank(keeper);
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.FractionAboveMax.selector, f, 0.1e18));
        engine.liquidate(reqs, katt, ksigs);
    }

    function test_frontRunByStateChangeInvalidatesTheRequest() public {
        uint256 mark = 2_300e18;
        LiquidationRequest[] memory reqs = new LiquidationRequest[](1);
        reqs[0] = request(alice, int256(10 * mark), mmAt(mark));
        (MarginAttestation memory katt, bytes memory ksigs) = keeperNow(0, 0);
        // alice trades first (sells 1 perp back to bob): her portfolio state changes
        fill(order(bob, perpId, 1e18, 2_300e18, 2), bobKey, alice, 1e18, quote(0, 0, int256(9 * mark), 0));
        vm.prank(keeper);
        vm.expectEmit();
        emit ILiquidationEngine.LiquidationSkipped(alice, 1);
        vm.expectRevert(ILiquidationEngine.NothingLiquidated.selector);
        engine.liquidate(reqs, katt, ksigs);
    }

    function test_liquidatorMustMeetInitialMargin() public {
        uint256 mark = 2_300e18;
        LiquidationRequest[] memory reqs = new LiquidationRequest[](1);
        reqs[0] = request(alice, int256(10 * mark), mmAt(mark));
        (MarginAttestation memory katt, bytes memory ksigs) = keeperNow(0, 500_000e18);
        vm.prank(keeper);
        vm.expectRevert(); // LiquidatorBelowInitialMargin
        engine.liquidate(reqs, katt, ksigs);
    }

    function test_selfLiquidationRejected() public {
        uint256 mark = 2_300e18;
        LiquidationRequest[] memory reqs = new LiquidationRequest[](1);
        reqs[0] = request(alice, int256(10 * mark), mmAt(mark));
        vm.prank(alice);
        vm.expectRevert(ILiquidationEngine.SelfLiquidation.selector);
        engine.liquidate(reqs, reqs[0].att, reqs[0].sigs);
    }

    function test_staleAttestationRejected() public {
        uint256 mark = 2_300e18;
        LiquidationRequest[] memory reqs = new LiquidationRequest[](1);
        reqs[0] = request(alice, int256(10 * mark), mmAt(mark));
        vm.warp(block.timestamp + 200);
        MarginAttestation memory none;
        vm.prank(keeper);
        vm.expectRevert(); // AttestationExpired
        engine.liquidate(reqs, none, "");
    }

    function test_liquidationWorksWhilePaused() public {
        vm.prank(guardian);
        ch.setPaused(true, true);
        liquidateOne(alice, int256(10 * 2_300e18), mmAt(2_300e18), int256(3 * 2_300e18), 2_000e18);
        assertLt(ch.positionOf(alice, perpId), 10e18, "liquidated while paused");
    }

    function test_dustRemainderTakesEverything() public {
        // a tiny account: after a partial slice less than the dust margin would remain
        fill(order(bob, perpId, -0.02e18, 3_000e18, 7), bobKey, carolFunded(), 0.02e18, quote(0, 0, 60e18, 12e18));
        MarginAttestation memory catt = attestation(carol, 60e18, 12e18, 9e18);
        bytes memory csigs = oracleSign(catt);
        vm.prank(carol);
        ch.withdraw(977e6, carol, catt, csigs);
        uint256 mark = 2_000e18;
        int256 value = int256(0.02e18 * mark / 1e18);
        uint256 mm = 0.02e18 * mark / 1e18 * 16 / 100; // 6.4: below the dust margin of 10
        assertLt(ch.cashOf(carol) + value, int256(mm), "carol below MM");
        liquidateOne(carol, value, mm, int256(3 * mark), 1_000e18);
        assertEq(ch.positionOf(carol, perpId), 0, "whole portfolio taken");
    }

    function test_bankruptcyCoveredByTheFund() public {
        uint256 mark = 1_900e18; // equity = -20,015 + 19,000 < 0
        int256 equity = equityAt(mark);
        assertLt(equity, 0, "bankrupt");
        uint256 fundBefore = fundContract.fundBalance();
        liquidateOne(alice, int256(10 * mark), mmAt(mark), int256(10 * mark), 4_000e18);
        assertEq(ch.positionOf(alice, perpId), 0, "flat");
        assertEq(ch.positionOf(keeper, perpId), 10e18, "keeper took all");
        assertGe(ch.cashOf(alice), 0, "deficit covered");
        assertLt(ch.cashOf(alice), 1e12, "to the token unit");
        assertLt(fundContract.fundBalance(), fundBefore, "fund paid");
        assertEq(usdc.balanceOf(address(fundContract)) * 1e12, fundContract.fundBalance(), "fund custody");
        assertEq(usdc.balanceOf(address(ch)) * 1e12, uint256(ch.totalCash()) + ch.protocolFees(), "ch custody");
    }

    function test_bankruptcyBeyondTheFundGoesToAdl() public {
        uint256 mark = 1_000e18; // deficit ~10,015 > fund after draining
        vm.prank(owner);
        // a small fund: bankrupt deficit exceeds it
        setUpSmallFund();
        LiquidationRequest[] memory reqs = new LiquidationRequest[](1);
        reqs[0] = request(alice, int256(10 * mark), mmAt(mark));
        (MarginAttestation memory katt, bytes memory ksigs) = keeperNow(0, 0);
        vm.prank(keeper);
        vm.expectEmit();
        emit ILiquidationEngine.LiquidationSkipped(alice, 3);
        vm.expectRevert(ILiquidationEngine.NothingLiquidated.selector);
        engine.liquidate(reqs, katt, ksigs);
    }

    function setUpSmallFund() internal {
        // drain by covering a fake bankruptcy is not possible; redeploy the system with a small fund
        setUpLiquidation(3, 2);
        fund(alice, 10_000);
        fund(bob, 100_000);
        fund(keeper, 100_000);
        seedFund(100);
        aliceBuysTenPerpsFromBob();
    }

    function test_batchLiquidatesSeveralAccounts() public {
        fill(
            order(bob, perpId, -10e18, 3_000e18, 2),
            bobKey,
            carolFunded10k(),
            10e18,
            quote(-60_000e18, 12_000e18, 30_000e18, 6_000e18)
        );
        uint256 mark = 2_300e18;
        LiquidationRequest[] memory reqs = new LiquidationRequest[](2);
        reqs[0] = request(alice, int256(10 * mark), mmAt(mark));
        reqs[1] = request(carol, int256(10 * mark), mmAt(mark));
        (MarginAttestation memory katt, bytes memory ksigs) = keeperNow(0, 0);
        vm.prank(keeper);
        engine.liquidate(reqs, katt, ksigs);
        assertLt(ch.positionOf(alice, perpId), 10e18, "alice");
        assertLt(ch.positionOf(carol, perpId), 10e18, "carol");
    }

    function testFuzz_noHealthyAccountIsLiquidatable(uint256 mark, uint256 mmPct) public {
        mark = bound(mark, 100e18, 10_000e18);
        mmPct = bound(mmPct, 1, 50);
        int256 equity = equityAt(mark);
        uint256 mm = 10 * mark * mmPct / 100;
        vm.assume(equity >= int256(mm));
        LiquidationRequest[] memory reqs = new LiquidationRequest[](1);
        MarginAttestation memory att = attestation(alice, int256(10 * mark), mm * 5 / 4, mm);
        reqs[0] = LiquidationRequest(alice, att, oracleSign(att), 1e18);
        (MarginAttestation memory katt, bytes memory ksigs) = keeperNow(0, 0);
        vm.prank(keeper);
        vm.expectRevert(ILiquidationEngine.NothingLiquidated.selector);
        engine.liquidate(reqs, katt, ksigs);
    }

    function testFuzz_fractionIsMinimalAndSufficient(uint256 equity, uint256 mm) public view {
        mm = bound(mm, 1_000e18, 1e30);
        equity = bound(equity, 1, mm - 1);
        (uint256 f, uint256 bonus, uint256 fee) = engine.liquidationTerms(int256(equity), mm);
        if (f == 1e18) return; // full liquidation
        // sufficient: E − bonus − fee ≥ 1.1 × (1 − f) × MM (within rounding)
        uint256 remainingTarget = mm * (1e18 - f) / 1e18 * 11 / 10;
        assertGe(equity + 2, bonus + fee + remainingTarget, "restores the target");
        // minimal: at f − 1e-9 relative, (with the base fee) the target is missed
        uint256 g = f - f / 1e9 - 1;
        uint256 need = mm * (1e18 - g) / 1e18 * 11 / 10;
        uint256 cost = mm * g / 1e18 * 15 / 100; // bonus 10% + fee 5% of the slice MM
        assertLt(equity, cost + need, "a smaller fraction falls short");
    }

    function carolFunded() internal returns (address) {
        fund(carol, 1_000);
        return carol;
    }

    function carolFunded10k() internal returns (address) {
        fund(carol, 10_000);
        return carol;
    }
}
