// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {LiquidationFixture} from "../utils/LiquidationFixture.sol";
import {MarginAttestation} from "../../../contracts/interfaces/IClearinghouse.sol";
import {ILiquidationEngine} from "../../../contracts/interfaces/ILiquidationEngine.sol";

/// @notice clearFlag (and flagBankruptcy) compare ONE account's deficit with the WHOLE fund and pay
///         nothing for an account that still has positions. Two bankrupt accounts whose deficits
///         are each below the fund but together exceed it are both cleared: the gate is lifted
///         while the bad debt exceeds the fund, and the winning counterparty withdraws.
contract ClearFlagDoubleCountsFundTest is LiquidationFixture {
    event log_named_uint(string key, uint256 val);
    event log_named_int(string key, int256 val);

    address internal erin;
    uint256 internal erinKey = 0xE41;

    function setUp() public {
        setUpLiquidation(3, 2);
        erin = vm.addr(erinKey);
        fund(alice, 700);
        fund(erin, 700);
        fund(bob, 10_000);
        fund(keeper, 100_000);
        seedFund(100);
        fill(order(bob, perpId, -1e18, 3_000e18, 1), bobKey, alice, 1e18, quote(-3_000e18, 600e18, 3_000e18, 600e18));
        fill(order(bob, perpId, -1e18, 3_000e18, 2), bobKey, erin, 1e18, quote(-6_000e18, 1_200e18, 3_000e18, 600e18));
    }

    function att(address a) internal view returns (MarginAttestation memory m, bytes memory s) {
        m = attestation(a, 2_000e18, 400e18, 320e18); // ETH crashed to 2,000
        s = oracleSign(m);
    }

    function test_twoDeficitsCannotBothCountOnOneFund() public {
        vm.warp(block.timestamp + 5);
        (MarginAttestation memory aa, bytes memory as_) = att(alice);
        (MarginAttestation memory ea, bytes memory es) = att(erin);
        engine.flagBankruptcy(alice, aa, as_); // -301.5 vs fund 100
        engine.flagBankruptcy(erin, ea, es);
        assertEq(ch.flaggedCount(), 2);

        seedFund(300); // fund 400: each deficit (301.5) fits, both (603) do not
        // a deficit is cleared by the fund paying it (a whole liquidation), not by a promise of its
        // balance that both flags could count on
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.StillBankrupt.selector, int256(-301.5e18), 400e18));
        engine.clearFlag(alice, aa, as_);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.StillBankrupt.selector, int256(-301.5e18), 400e18));
        engine.clearFlag(erin, ea, es);
        emit log_named_uint("flaggedCount", ch.flaggedCount());
        uint256 deficits = uint256(-(ch.cashOf(alice) + 2_000e18)) + uint256(-(ch.cashOf(erin) + 2_000e18));
        emit log_named_uint("total bad debt", deficits);
        emit log_named_uint("fund", fundContract.fundBalance());

        // bob (short 2 at 3,000, value -4,000) withdraws down to his IM while both are still open
        MarginAttestation memory batt = attestation(bob, -4_000e18, 800e18, 640e18);
        bytes memory bsigs = oracleSign(batt);
        if (!ch.withdrawalsGated()) {
            vm.prank(bob);
            ch.withdraw(11_000e6, bob, batt, bsigs);
            emit log_named_uint("bob withdrew", 11_000e6);
        }

        // Property: withdrawals stay gated while unresolved bad debt exceeds the fund.
        assertTrue(deficits <= fundContract.fundBalance() || ch.withdrawalsGated(), "gate lifted while bad debt > fund");
    }
}
