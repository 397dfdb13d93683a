// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {LiquidationFixture} from "../utils/LiquidationFixture.sol";
import {IClearinghouse, MarginAttestation} from "../../../contracts/interfaces/IClearinghouse.sol";
import {IClearinghouseEngineHooks} from "../../../contracts/interfaces/IClearinghouseEngineHooks.sol";
import {IInsuranceFund} from "../../../contracts/interfaces/IInsuranceFund.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @notice Fees, engine wiring and the insurance fund's own rules.
contract OperationsTest is LiquidationFixture {
    function setUp() public {
        setUpLiquidation(3, 2);
        fund(alice, 100_000);
        fund(bob, 100_000);
    }

    function test_ownerWithdrawsTradingFees() public {
        fill(order(bob, perpId, -10e18, 3_000e18, 1), bobKey, alice, 10e18, quote(0, 0, 0, 0));
        uint256 fees = ch.protocolFees();
        assertEq(fees, 15e18, "0.05% of 30,000");
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, alice));
        ch.withdrawFees(alice, fees);
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.InsufficientCash.selector, int256(fees), fees + 1));
        ch.withdrawFees(owner, fees + 1);
        vm.prank(owner);
        ch.withdrawFees(carol, fees);
        assertEq(usdc.balanceOf(carol), 15e6, "fees paid out");
        assertEq(usdc.balanceOf(address(ch)) * 1e12, uint256(ch.totalCash()) + ch.protocolFees(), "custody");
    }

    function test_engineCannotBeBootstrappedAfterTheFirstDeposit() public {
        assertTrue(ch.isSealed(), "sealed by the first deposit");
        vm.prank(owner);
        vm.expectRevert(IClearinghouse.AlreadySealed.selector);
        ch.bootstrapEngine(address(0xE));
    }

    function test_engineHooksRefuseOthers() public {
        MarginAttestation memory none;
        vm.startPrank(alice);
        vm.expectRevert(IClearinghouseEngineHooks.NotEngine.selector);
        ch.engineTransferSlice(bob, alice, 1e18);
        vm.expectRevert(IClearinghouseEngineHooks.NotEngine.selector);
        ch.engineMovePosition(bob, alice, perpId, 1);
        vm.expectRevert(IClearinghouseEngineHooks.NotEngine.selector);
        ch.enginePayOut(bob, alice, 1e18);
        vm.expectRevert(IClearinghouseEngineHooks.NotEngine.selector);
        ch.enginePayIn(bob, 1);
        vm.expectRevert(IClearinghouseEngineHooks.NotEngine.selector);
        ch.engineSetFlag(bob, true);
        vm.expectRevert(IClearinghouseEngineHooks.NotEngine.selector);
        ch.verifyMarginAttestation(bob, none, "");
        vm.expectRevert(IClearinghouseEngineHooks.NotEngine.selector);
        ch.verifyOracleSignatures(bytes32(0), 0, 0, "");
        vm.stopPrank();
    }

    function test_engineDisabledThroughTimelock() public {
        vm.prank(owner);
        ch.scheduleEngine(address(engine), false);
        vm.warp(block.timestamp + TIMELOCK);
        ch.executeEngine(address(engine));
        assertFalse(ch.isEngine(address(engine)), "disabled");
    }

    function test_minNonceMustRise() public {
        vm.startPrank(bob);
        ch.raiseMinNonce(5);
        vm.expectRevert(IClearinghouse.MinNonceNotIncreasing.selector);
        ch.raiseMinNonce(5);
        vm.stopPrank();
    }

    function test_fundRules() public {
        vm.expectRevert(IClearinghouseEngineHooks.NotEngine.selector);
        fundContract.release(alice, 1);
        vm.expectRevert(IClearinghouseEngineHooks.NotEngine.selector);
        fundContract.recordFee(alice, 1);
        vm.expectRevert(IClearinghouse.ZeroAmount.selector);
        fundContract.deposit(0);
        vm.prank(owner);
        vm.expectRevert(IInsuranceFund.TargetOutOfBounds.selector);
        fundContract.setTarget(1e33 + 1);
        assertEq(fundContract.health(), type(uint256).max, "no target: unbounded health");
        seedFund(500);
        vm.prank(owner);
        fundContract.setTarget(1_000e18);
        assertEq(fundContract.health(), 0.5e18, "half funded");
    }

    function testFuzz_releaseNeverExceedsTheBalance(uint96 seeded, uint96 asked) public {
        seeded = uint96(bound(seeded, 1, 1e12));
        seedFund(seeded);
        uint256 balance = fundContract.fundBalance();
        vm.prank(address(engine));
        uint256 tokens = fundContract.release(alice, asked);
        assertLe(tokens * 1e12, balance, "never more than the balance");
        assertEq(fundContract.fundBalance(), balance - tokens * 1e12, "the balance falls by what was released");
    }
}
