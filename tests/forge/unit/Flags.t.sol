// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {BankruptcyFixture} from "../utils/BankruptcyFixture.sol";
import {IClearinghouse, MarginAttestation} from "../../../contracts/interfaces/IClearinghouse.sol";
import {IInsuranceFund} from "../../../contracts/interfaces/IInsuranceFund.sol";
import {LiquidationEngine} from "../../../contracts/core/LiquidationEngine.sol";
import {
    AdlAttestation,
    AdlFill,
    ILiquidationEngine,
    LiquidationRequest
} from "../../../contracts/interfaces/ILiquidationEngine.sol";

/// @notice The withdrawal gate is up exactly while some bad debt is unresolved: a flag set for a
///         deficit beyond the fund comes down however the deficit is resolved, and anyone can
///         take it down on-chain. Alice (long 10 perpetuals from 3,000) is bankrupt at 1,000 by
///         10,015 against a fund of 100 (see BankruptcyFixture).
contract FlagsTest is BankruptcyFixture {
    address internal outsider = address(0x0B5E);

    function setUp() public {
        setUpBankruptcy(false);
    }

    function assertGateMatchesFlags() internal view {
        assertEq(ch.withdrawalsGated(), ch.flaggedCount() > 0, "withdrawalsGated == (flaggedCount > 0)");
    }

    /// Guards: a whole liquidation through the fund takes the flag down by itself.
    function test_fundGrowsAndWholeLiquidationClearsTheFlag() public {
        flagAlice();
        assertTrue(ch.flagged(alice), "flagged");
        assertTrue(ch.withdrawalsGated(), "gated");
        seedFund(20_000); // now the fund can cover the 10,015
        vm.expectEmit(address(engine));
        emit ILiquidationEngine.BankruptcyCleared(alice, 0);
        liquidateAliceWhole();
        assertEq(ch.openInstruments(alice).length, 0, "taken whole");
        assertEq(ch.cashOf(alice), 0, "deficit paid by the fund");
        assertFalse(ch.flagged(alice), "flag cleared");
        assertEq(ch.flaggedCount(), 0, "count");
        assertFalse(ch.withdrawalsGated(), "gate lifted");
        assertEq(fundContract.fundBalance(), 20_100e18 - 10_015e18, "fund paid exactly the deficit");
    }

    /// Guards: a deposit that restores the account lets anyone clear the flag.
    function test_depositIntoTheAccountLetsAnyoneClear() public {
        flagAlice();
        (MarginAttestation memory att, bytes memory sigs) = aliceAt(MARK);
        vm.prank(outsider);
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.StillBankrupt.selector, -10_015e18, 100e18));
        engine.clearFlag(alice, att, sigs);
        usdc.mint(bob, 10_015e6);
        vm.startPrank(bob);
        usdc.approve(address(ch), 10_015e6);
        ch.deposit(alice, 10_015e6); // someone else pays alice's deficit in
        vm.stopPrank();
        vm.prank(outsider);
        engine.clearFlag(alice, att, sigs);
        assertFalse(ch.flagged(alice), "cleared by an outsider");
        assertFalse(ch.withdrawalsGated(), "gate lifted");
        assertGateMatchesFlags();
    }

    /// Guards: a price recovery lets anyone clear the flag with a fresh attestation.
    function test_priceRecoveryLetsAnyoneClearWithAnAttestation() public {
        flagAlice();
        vm.warp(block.timestamp + 10);
        (MarginAttestation memory att, bytes memory sigs) = aliceAt(2_500e18); // equity 4,985
        vm.prank(outsider);
        vm.expectEmit(address(engine));
        emit ILiquidationEngine.BankruptcyCleared(alice, 4_985e18);
        engine.clearFlag(alice, att, sigs);
        assertFalse(ch.withdrawalsGated(), "gate lifted");
        assertEq(ch.positionOf(alice, perpId), 10e18, "positions untouched");
    }

    /// Guards: clearFlag refuses (StillBankrupt) while the deficit is beyond the fund, not after.
    function test_clearRefusedWhileInDeficitTheFundPaysByTheWholeLiquidation() public {
        flagAlice();
        (MarginAttestation memory att, bytes memory sigs) = aliceAt(MARK);
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.StillBankrupt.selector, -10_015e18, 100e18));
        engine.clearFlag(alice, att, sigs);
        seedFund(9_915); // the fund can cover now: but a flag is cleared by paying, not by a promise
        vm.prank(outsider);
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.StillBankrupt.selector, -10_015e18, 10_015e18));
        engine.clearFlag(alice, att, sigs);
        assertTrue(ch.withdrawalsGated(), "still gated");
        liquidateAliceWhole();
        assertFalse(ch.withdrawalsGated(), "liquidated whole through the fund: cleared");
        assertEq(ch.cashOf(alice), 0, "deficit paid");
        assertEq(fundContract.fundBalance(), 0, "by the fund");
    }

    /// Guards: an account without positions needs no attestation to be flagged or cleared.
    function test_accountWithoutPositionsNeedsNoAttestation() public {
        // a levered queue leaves alice with 4,415 of bad debt and no positions (see AdlSolvency)
        setUpBankruptcy(true);
        (AdlAttestation memory att, bytes memory sigs, AdlFill[] memory fills) = alicePlan();
        engine.deleverage(att, sigs, fills);
        assertEq(ch.openInstruments(alice).length, 0, "no positions");
        assertEq(ch.cashOf(alice), -4_415e18, "uncovered remainder");
        assertTrue(ch.flagged(alice), "flagged by the deleveraging");
        MarginAttestation memory none;
        vm.prank(outsider);
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.StillBankrupt.selector, -4_415e18, 0));
        engine.clearFlag(alice, none, "");
        seedFund(5_000);
        vm.prank(outsider);
        engine.clearFlag(alice, none, ""); // the fund pays the plain cash deficit at once
        assertEq(ch.cashOf(alice), 0, "deficit paid");
        assertEq(fundContract.fundBalance(), 5_000e18 - 4_415e18, "fund paid exactly the deficit");
        assertFalse(ch.withdrawalsGated(), "gate lifted");
    }

    /// Guards: a deposit into a flagged position-less account lets anyone clear it, no attestation.
    function test_positionlessAccountFlaggedAndClearedByADeposit() public {
        setUpBankruptcy(true);
        (AdlAttestation memory att, bytes memory sigs, AdlFill[] memory fills) = alicePlan();
        engine.deleverage(att, sigs, fills);
        MarginAttestation memory none;
        vm.prank(outsider);
        engine.flagBankruptcy(alice, none, ""); // no attestation needed without positions
        assertEq(ch.flaggedCount(), 1, "still one flag");
        usdc.mint(outsider, 4_415e6);
        vm.startPrank(outsider);
        usdc.approve(address(ch), 4_415e6);
        ch.deposit(alice, 4_415e6);
        engine.clearFlag(alice, none, "");
        vm.stopPrank();
        assertEq(ch.cashOf(alice), 0, "repaid by the deposit");
        assertEq(fundContract.fundBalance(), 0, "the fund paid nothing");
        assertFalse(ch.withdrawalsGated(), "gate lifted");
    }

    /// Guards: the gate is up iff some account is flagged, across several flags and clears.
    function test_gateIsUpExactlyWhileAnyAccountIsFlagged() public {
        address erin = vm.addr(0xE41);
        fund(erin, 1_000);
        fill(order(bob, perpId, -1e18, 3_000e18, 9), bobKey, erin, 1e18, quote(0, 0, 3_000e18, 600e18));
        assertGateMatchesFlags();
        flagAlice();
        assertGateMatchesFlags();
        // erin: cash −2,001.5, value 1,000 at ETH 1,000: bankrupt by 1,001.5 beyond the fund of 100
        MarginAttestation memory eatt = attestation(erin, 1_000e18, 200e18, 160e18);
        engine.flagBankruptcy(erin, eatt, oracleSign(eatt));
        assertEq(ch.flaggedCount(), 2, "two flagged");
        assertGateMatchesFlags();
        usdc.mint(outsider, 1_002e6);
        vm.startPrank(outsider);
        usdc.approve(address(ch), 1_002e6);
        ch.deposit(erin, 1_002e6);
        engine.clearFlag(erin, eatt, oracleSign(eatt));
        vm.stopPrank();
        assertEq(ch.flaggedCount(), 1, "one left");
        assertTrue(ch.withdrawalsGated(), "still gated for alice");
        assertGateMatchesFlags();
        (MarginAttestation memory aatt, bytes memory asigs) = aliceAt(2_500e18);
        engine.clearFlag(alice, aatt, asigs);
        assertEq(ch.flaggedCount(), 0, "none left");
        assertGateMatchesFlags();
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.NotFlagged.selector, alice));
        engine.clearFlag(alice, aatt, asigs);
    }

    /// Guards: flagging twice counts once, so one clear lifts the gate.
    function test_flaggingTwiceCountsOnce() public {
        flagAlice();
        vm.warp(block.timestamp + 1);
        flagAlice();
        assertEq(ch.flaggedCount(), 1, "counted once");
        (MarginAttestation memory att, bytes memory sigs) = aliceAt(2_500e18);
        engine.clearFlag(alice, att, sigs);
        assertFalse(ch.withdrawalsGated(), "one clear lifts the gate");
    }

    /// Guards: a flag stays clearable by anyone after a timelocked engine swap (gate outliving debt).
    function test_flagStaysClearableAcrossAnEngineSwap() public {
        flagAlice();
        LiquidationEngine next = new LiquidationEngine(ch, IInsuranceFund(address(fundContract)));
        vm.startPrank(owner);
        ch.scheduleEngine(address(next), true);
        ch.scheduleEngine(address(engine), false);
        vm.stopPrank();
        vm.warp(block.timestamp + TIMELOCK);
        ch.executeEngine(address(next));
        ch.executeEngine(address(engine));
        // alice recovers: her deficit is resolved
        usdc.mint(outsider, 10_015e6);
        vm.startPrank(outsider);
        usdc.approve(address(ch), 10_015e6);
        ch.deposit(alice, 10_015e6);
        vm.stopPrank();
        (MarginAttestation memory att, bytes memory sigs) = aliceAt(MARK);
        vm.prank(outsider);
        try engine.clearFlag(alice, att, sigs) {} catch {}
        if (ch.withdrawalsGated()) {
            vm.prank(outsider);
            try next.clearFlag(alice, att, sigs) {} catch {}
        }
        assertFalse(ch.withdrawalsGated(), "no unresolved bad debt, yet withdrawals stay gated");
    }

    /// Guards: after an engine swap, the new engine clearing its own flag does not lift the gate over unresolved bad debt.
    function test_engineSwapDoesNotLiftTheGateOverUnresolvedBadDebt() public {
        flagAlice(); // alice: bankrupt by 10,015 beyond the fund of 100, flagged by the first engine
        LiquidationEngine next = new LiquidationEngine(ch, IInsuranceFund(address(fundContract)));
        vm.startPrank(owner);
        ch.scheduleEngine(address(next), true);
        ch.scheduleEngine(address(engine), false);
        vm.stopPrank();
        vm.warp(block.timestamp + TIMELOCK);
        ch.executeEngine(address(next));
        ch.executeEngine(address(engine));
        // erin goes bankrupt beyond the fund too, is flagged by the new engine, then repays
        address erin = vm.addr(0xE41);
        fund(erin, 1_000);
        fill(order(bob, perpId, -1e18, 3_000e18, 9), bobKey, erin, 1e18, quote(0, 0, 3_000e18, 600e18));
        MarginAttestation memory eatt = attestation(erin, 1_000e18, 200e18, 160e18);
        next.flagBankruptcy(erin, eatt, oracleSign(eatt));
        usdc.mint(outsider, 1_002e6);
        vm.startPrank(outsider);
        usdc.approve(address(ch), 1_002e6);
        ch.deposit(erin, 1_002e6);
        next.clearFlag(erin, eatt, oracleSign(eatt));
        vm.stopPrank();
        // alice's deficit is as unresolved as before
        (MarginAttestation memory att, bytes memory sigs) = aliceAt(MARK);
        vm.expectRevert(); // still bankrupt beyond the fund: no engine can clear her
        next.clearFlag(alice, att, sigs);
        assertTrue(ch.withdrawalsGated(), "withdrawals open while bad debt beyond the fund is unresolved");
    }
}
