// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ClearinghouseFixture} from "../utils/ClearinghouseFixture.sol";
import {Clearinghouse} from "../../../contracts/core/Clearinghouse.sol";
import {IClearinghouse, MarginAttestation} from "../../../contracts/interfaces/IClearinghouse.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {FeeOnTransferToken, NoReturnToken, TooPreciseToken} from "../mocks/OddTokens.sol";

contract CollateralTest is ClearinghouseFixture {
    MarginAttestation internal none;

    function setUp() public {
        setUpClearinghouse(6, 3, 2);
    }

    function test_deposit_creditsWad() public {
        usdc.mint(alice, 1_500e6);
        vm.startPrank(alice);
        usdc.approve(address(ch), 1_500e6);
        vm.expectEmit(true, true, false, true);
        emit IClearinghouse.Deposited(alice, alice, 1_500e6, 1_500e18);
        ch.deposit(alice, 1_500e6);
        vm.stopPrank();
        assertEq(ch.cashOf(alice), int256(1_500e18), "cash");
        assertEq(ch.totalCash(), int256(1_500e18), "total cash");
        assertEq(usdc.balanceOf(address(ch)), 1_500e6, "custody");
    }

    function test_deposit_forAnotherAccount() public {
        usdc.mint(bob, 10e6);
        vm.startPrank(bob);
        usdc.approve(address(ch), 10e6);
        ch.deposit(alice, 10e6);
        vm.stopPrank();
        assertEq(ch.cashOf(alice), int256(10e18), "alice credited");
        assertEq(ch.cashOf(bob), 0, "bob not credited");
    }

    function test_deposit_eighteenDecimals() public {
        setUpClearinghouse(18, 3, 2);
        fund(alice, 7);
        assertEq(ch.cashOf(alice), int256(7e18), "cash");
    }

    function test_deposit_zeroReverts() public {
        vm.expectRevert(IClearinghouse.ZeroAmount.selector);
        ch.deposit(alice, 0);
    }

    function test_deposit_toZeroAddressReverts() public {
        vm.expectRevert(IClearinghouse.ZeroAddress.selector);
        ch.deposit(address(0), 1);
    }

    function test_deposit_allowedWhilePaused() public {
        vm.prank(guardian);
        ch.setPaused(true, true);
        fund(alice, 5);
        assertEq(ch.cashOf(alice), int256(5e18), "deposit while paused");
    }

    function test_feeOnTransferTokenRejected() public {
        FeeOnTransferToken fee = new FeeOnTransferToken();
        Clearinghouse feeCh = deployClearinghouse(IERC20(address(fee)), oracleKeys, 2);
        fee.mint(alice, 100e6);
        vm.startPrank(alice);
        fee.approve(address(feeCh), 100e6);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.TransferAmountMismatch.selector, 100e6, 99e6));
        feeCh.deposit(alice, 100e6);
        vm.stopPrank();
    }

    function test_noReturnTokenWorks() public {
        NoReturnToken t = new NoReturnToken();
        Clearinghouse tCh = deployClearinghouse(IERC20(address(t)), oracleKeys, 2);
        t.mint(alice, 100e6);
        vm.startPrank(alice);
        t.approve(address(tCh), 100e6);
        tCh.deposit(alice, 100e6);
        tCh.withdraw(40e6, alice, none, "");
        vm.stopPrank();
        assertEq(t.balanceOf(alice), 40e6, "withdrawn");
        assertEq(tCh.cashOf(alice), int256(60e18), "remaining");
    }

    function test_tooManyDecimalsRejected() public {
        TooPreciseToken t = new TooPreciseToken();
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.TokenDecimalsUnsupported.selector, uint8(24)));
        deployClearinghouse(IERC20(address(t)), oracleKeys, 2);
    }

    function test_withdraw_withoutPositionsNeedsNoAttestation() public {
        fund(alice, 100);
        vm.prank(alice);
        ch.withdraw(60e6, carol, none, "");
        assertEq(usdc.balanceOf(carol), 60e6, "sent to carol");
        assertEq(ch.cashOf(alice), int256(40e18), "cash left");
        assertEq(ch.totalCash(), int256(40e18), "total cash");
    }

    function test_withdraw_overCashReverts() public {
        fund(alice, 100);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.InsufficientCash.selector, int256(100e18), 101e18));
        ch.withdraw(101e6, alice, none, "");
    }

    function test_withdraw_zeroReverts() public {
        vm.prank(alice);
        vm.expectRevert(IClearinghouse.ZeroAmount.selector);
        ch.withdraw(0, alice, none, "");
    }

    function test_withdraw_pausedReverts() public {
        fund(alice, 100);
        vm.prank(guardian);
        ch.setPaused(false, true);
        vm.prank(alice);
        vm.expectRevert(IClearinghouse.WithdrawalsPaused.selector);
        ch.withdraw(1e6, alice, none, "");
    }

    function test_withdraw_withPositionsChecksAttestedIm() public {
        _openPerp();
        // alice: cash 10,000 − 3,000 (bought 1 perp at 3,000) → 7,000 minus fee; value 3,000
        int256 cash = ch.cashOf(alice);
        MarginAttestation memory att = attestation(alice, 3_000e18, 2_000e18, 1_600e18);
        bytes memory sigs = oracleSign(att);
        uint256 equity = uint256(cash + 3_000e18);
        uint256 maxOut = (equity - 2_000e18) / 1e12; // token units, rounded down
        vm.prank(alice);
        vm.expectRevert(
            abi.encodeWithSelector(
                IClearinghouse.InsufficientEquity.selector, int256(equity) - int256((maxOut + 1) * 1e12), 2_000e18
            )
        );
        ch.withdraw(maxOut + 1, alice, att, sigs);
        vm.prank(alice);
        ch.withdraw(maxOut, alice, att, sigs);
        assertEq(usdc.balanceOf(alice), maxOut, "withdrew exactly to IM");
    }

    function test_withdraw_withPositionsRequiresAValidAttestation() public {
        _openPerp();
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.WrongAccount.selector, alice, address(0)));
        ch.withdraw(1e6, alice, none, "");
    }

    function testFuzz_depositWithdrawRoundTrip(uint96 amount, uint96 out) public {
        amount = uint96(bound(amount, 1, type(uint64).max));
        out = uint96(bound(out, 1, amount));
        usdc.mint(alice, amount);
        vm.startPrank(alice);
        usdc.approve(address(ch), amount);
        ch.deposit(alice, amount);
        ch.withdraw(out, alice, none, "");
        vm.stopPrank();
        assertEq(ch.cashOf(alice), int256(uint256(amount - out) * 1e12), "cash is the remainder in WAD");
        assertEq(usdc.balanceOf(address(ch)), amount - out, "custody");
        assertEq(usdc.balanceOf(alice), out, "received");
    }

    function _openPerp() internal {
        fund(alice, 10_000);
        fund(bob, 10_000);
        // bob (maker) sells 1 perp at 3,000 to alice (taker)
        fill(
            order(bob, perpId, -1e18, 3_000e18, 1), bobKey, alice, 1e18, quote(-3_000e18, 1_000e18, 3_000e18, 1_000e18)
        );
    }
}
