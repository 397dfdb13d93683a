// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {LiquidationFixture} from "../utils/LiquidationFixture.sol";
import {IClearinghouse, MarginAttestation} from "../../../contracts/interfaces/IClearinghouse.sol";
import {IClearinghouseEngineHooks} from "../../../contracts/interfaces/IClearinghouseEngineHooks.sol";
import {IInsuranceFund} from "../../../contracts/interfaces/IInsuranceFund.sol";
import {LiquidationEngine} from "../../../contracts/core/LiquidationEngine.sol";
import {ILiquidationEngine, LiquidationRequest} from "../../../contracts/interfaces/ILiquidationEngine.sol";

/// @notice Engines and the insurance fund: an engine can bring collateral in only from the fund
///         (never from a user who left an allowance to the clearinghouse), and the fund follows
///         the clearinghouse's engine set, so a timelocked engine swap carries the fund with it.
contract EngineFundTest is LiquidationFixture {
    function setUp() public {
        setUpLiquidation(3, 2);
        fund(alice, 10_000);
        fund(bob, 100_000);
        fund(carol, 14_000);
        fund(keeper, 100_000);
        seedFund(50_000);
        aliceBuysTenPerpsFromBob();
        fill(
            order(bob, perpId, -10e18, 3_000e18, 2),
            bobKey,
            carol,
            10e18,
            quote(-60_000e18, 12_000e18, 30_000e18, 6_000e18)
        );
    }

    /// Guards: an engine cannot pull a user's leftover allowance to the clearinghouse.
    function test_enginePayInNeverPullsAUsersAllowance() public {
        // alice keeps tokens in her wallet and an open allowance to the clearinghouse
        usdc.mint(alice, 1_000e6);
        vm.prank(alice);
        usdc.approve(address(ch), type(uint256).max);
        int256 bobCash = ch.cashOf(bob);
        vm.prank(address(engine));
        vm.expectRevert(
            abi.encodeWithSignature("ERC20InsufficientAllowance(address,uint256,uint256)", address(ch), 0, 1_000e6)
        );
        ch.enginePayIn(bob, 1_000e6);
        assertEq(usdc.balanceOf(alice), 1_000e6, "alice's wallet untouched");
        assertEq(ch.cashOf(bob), bobCash, "nothing credited");
        // what the fund released is what comes in, and from the fund only
        uint256 fundTokens = usdc.balanceOf(address(fundContract));
        vm.startPrank(address(engine));
        uint256 released = fundContract.release(bob, 100e18);
        uint256 credited = ch.enginePayIn(bob, released);
        vm.stopPrank();
        assertEq(credited, 100e18, "credited the released amount");
        assertEq(usdc.balanceOf(address(fundContract)), fundTokens - 100e6, "pulled from the fund");
        assertEq(usdc.balanceOf(alice), 1_000e6, "alice's wallet still untouched");
        assertEq(usdc.balanceOf(address(fundContract)) * 1e12, fundContract.fundBalance(), "fund custody");
    }

    function swapEngine() internal returns (LiquidationEngine next) {
        next = new LiquidationEngine(ch, IInsuranceFund(address(fundContract)));
        vm.startPrank(owner);
        ch.scheduleEngine(address(next), true);
        ch.scheduleEngine(address(engine), false);
        vm.stopPrank();
        vm.warp(block.timestamp + TIMELOCK);
        ch.executeEngine(address(next)); // anyone may execute
        ch.executeEngine(address(engine));
    }

    /// Guards: after a timelocked swap the new engine draws on the fund and the old one cannot.
    function test_swappedEngineUsesTheFundAndTheOldOneCannot() public {
        LiquidationEngine next = swapEngine();
        // at ETH 1,900: alice bankrupt by 1,015 (the fund covers); carol below MM (partial, fee)
        LiquidationRequest[] memory reqs = new LiquidationRequest[](2);
        reqs[0] = request(alice, 19_000e18, 3_040e18);
        reqs[1] = request(carol, 19_000e18, 3_040e18);
        (MarginAttestation memory katt, bytes memory ksigs) = keeperNow(0, 0);
        uint256 fundBefore = fundContract.fundBalance();
        vm.prank(keeper);
        vm.expectRevert(IClearinghouseEngineHooks.NotEngine.selector);
        engine.liquidate(reqs, katt, ksigs);
        vm.prank(keeper);
        next.liquidate(reqs, katt, ksigs);
        assertEq(ch.cashOf(alice), 0, "alice's deficit paid through the new engine");
        assertGt(ch.positionOf(carol, perpId), 0, "carol liquidated in part");
        assertLt(fundContract.fundBalance(), fundBefore, "the fund paid out");
        assertEq(usdc.balanceOf(address(fundContract)) * 1e12, fundContract.fundBalance(), "fund custody");
        vm.startPrank(address(engine));
        vm.expectRevert(IClearinghouseEngineHooks.NotEngine.selector);
        fundContract.release(alice, 1e18);
        vm.expectRevert(IClearinghouseEngineHooks.NotEngine.selector);
        fundContract.recordFee(alice, 1e18);
        vm.stopPrank();
        vm.prank(address(next));
        assertEq(fundContract.release(bob, 1e18), 1e6, "the new engine may release");
    }

    /// Guards: the fee of a partial liquidation is booked by whichever engine is enabled.
    function test_swappedEngineBooksFees() public {
        LiquidationEngine next = swapEngine();
        LiquidationRequest[] memory reqs = new LiquidationRequest[](1);
        reqs[0] = request(carol, 19_000e18, 3_040e18);
        (MarginAttestation memory katt, bytes memory ksigs) = keeperNow(0, 0);
        uint256 fundBefore = fundContract.fundBalance();
        vm.prank(keeper);
        next.liquidate(reqs, katt, ksigs);
        assertGt(fundContract.fundBalance(), fundBefore, "fee booked");
        assertEq(usdc.balanceOf(address(fundContract)) * 1e12, fundContract.fundBalance(), "fee backed by tokens");
    }
}
