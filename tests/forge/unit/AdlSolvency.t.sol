// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {BankruptcyFixture} from "../utils/BankruptcyFixture.sol";
import {MarginAttestation, SettlementPrice} from "../../../contracts/interfaces/IClearinghouse.sol";
import {AdlAttestation, AdlFill, ILiquidationEngine} from "../../../contracts/interfaces/ILiquidationEngine.sol";

/// @notice Deleveraging never pushes a counterparty below zero: each is charged at most its
///         equity at the plan's marks (cash + the value its queue leaf commits to). Alice's 9,915
///         haircut (deficit 10,015 − fund 100) would be 3,966 for carol (4 of 10 contracts) and
///         5,949 for bob; carol, 4× levered, has an equity of 2,500 (see BankruptcyFixture).
contract AdlSolvencyTest is BankruptcyFixture {
    function setUp() public {
        setUpBankruptcy(false);
    }

    function equityAtMarks(address a) internal view returns (int256) {
        return ch.cashOf(a) + (a == carol ? carolValue() : bobValue());
    }

    /// Guards: the first-ranked levered counterparty pays at most its equity; the rest moves down.
    function test_leveredCounterpartyChargedNoMoreThanItsEquity() public {
        assertEq(equityAtMarks(carol), 2_500e18, "carol's equity at the marks");
        assertEq(carolValue(), 1_994e18, "carol's leaf value");
        int256 carolCash = ch.cashOf(carol);
        int256 bobCash = ch.cashOf(bob);
        (AdlAttestation memory att, bytes memory sigs, AdlFill[] memory fills) = alicePlan();
        vm.expectEmit(address(engine));
        emit ILiquidationEngine.DeleveragingCompleted(alice, 10_015e18, 100e18, 9_915e18, 0);
        engine.deleverage(att, sigs, fills);

        // carol buys back her 4 at the mark (4,000) plus a charge capped at her 2,500
        assertEq(carolCash - ch.cashOf(carol), 6_500e18, "carol paid 4 x 1,000 + 2,500");
        assertEq(equityAtMarks(carol), 0, "carol left at exactly zero, never below");
        // bob carries his share (5,949) plus what carol could not (3,966 - 2,500 = 1,466)
        assertEq(bobCash - ch.cashOf(bob), 6_000e18 + 5_949e18 + 1_466e18, "bob paid 6 x 1,000 + 7,415");
        assertEq(ch.cashOf(alice), 0, "alice's deficit fully carried");
        assertEq(ch.positionOf(alice, perpId), 0, "alice flat");
        assertEq(ch.positionOf(carol, perpId), 0, "carol closed");
        assertEq(ch.positionOf(bob, perpId), 0, "bob closed");
        assertFalse(ch.flagged(alice), "nothing left unresolved");
        assertEq(usdc.balanceOf(address(ch)) * 1e12, uint256(ch.totalCash()) + ch.protocolFees(), "custody");
    }

    /// Guards: what the queue cannot carry stays as flagged negative cash, cleared after a refill.
    function test_queueShortOfEquityLeavesFlaggedRemainderClearedAfterRefill() public {
        setUpBankruptcy(true); // bob levered too: equity 3,000
        assertEq(equityAtMarks(bob), 3_000e18, "bob's equity at the marks");
        (AdlAttestation memory att, bytes memory sigs, AdlFill[] memory fills) = alicePlan();
        vm.expectEmit(address(engine));
        emit ILiquidationEngine.DeleveragingCompleted(alice, 10_015e18, 100e18, 5_500e18, 4_415e18);
        engine.deleverage(att, sigs, fills);
        assertEq(equityAtMarks(carol), 0, "carol at zero");
        assertEq(equityAtMarks(bob), 0, "bob at zero");
        assertEq(ch.cashOf(alice), -4_415e18, "what the queue could not carry stays with alice");
        assertEq(ch.openInstruments(alice).length, 0, "but her positions are all closed");
        assertTrue(ch.flagged(alice), "flagged");
        assertTrue(ch.withdrawalsGated(), "gated");

        MarginAttestation memory none;
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.StillBankrupt.selector, -4_415e18, 0));
        engine.clearFlag(alice, none, "");
        seedFund(4_415);
        vm.prank(address(0xC1EA4));
        engine.clearFlag(alice, none, "");
        assertEq(ch.cashOf(alice), 0, "the fund paid the remainder");
        assertEq(fundContract.fundBalance(), 0, "exactly");
        assertFalse(ch.withdrawalsGated(), "gate lifted");
        assertEq(usdc.balanceOf(address(ch)) * 1e12, uint256(ch.totalCash()) + ch.protocolFees(), "custody");
    }

    /// Guards: a counterparty whose portfolio changed since the plan (a cheap trade in front of the
    /// keeper) is skipped, not let off the haircut while still closing at the mark; the rest stays
    /// with the bankrupt account, flagged, and the deleveraging does not revert.
    function test_staleLeafIsSkippedAndTheRestStaysFlagged() public {
        (AdlAttestation memory att, bytes memory sigs, AdlFill[] memory fills) = alicePlan();
        // carol trades after the plan: one more deep call from dave (a 1-unit trade would do)
        fill(order(carol, deepCallId, 1e18, 999e18, 3), carolKey, dave, 1e18, quote(2_993e18, 0, 0, 0));
        assertTrue(ch.stateHashOf(carol) != fills[0].stateHash, "carol's leaf is stale");
        int256 carolCash = ch.cashOf(carol);
        int256 bobCash = ch.cashOf(bob);
        engine.deleverage(att, sigs, fills);
        // carol neither pays a haircut she was never checked against nor escapes with the
        // position taken at the mark: she is skipped, and keeps her rank for the next plan
        assertEq(ch.cashOf(carol), carolCash, "carol skipped: pays nothing");
        assertEq(ch.positionOf(carol, perpId), -4e18, "and keeps her short");
        assertEq(bobCash - ch.cashOf(bob), 6_000e18 + 5_949e18, "bob: 6 x mark + his own share only");
        assertEq(ch.positionOf(alice, perpId), 4e18, "carol's part stays with alice");
        assertTrue(ch.flagged(alice), "still flagged: the next plan takes the rest");
        assertTrue(ch.withdrawalsGated(), "gated meanwhile");
    }

    /// Guards: a leaf value other than the one the oracle committed to is refused.
    function test_leafValueCannotBeInflated() public {
        (AdlAttestation memory att, bytes memory sigs, AdlFill[] memory fills) = alicePlan();
        fills[0].value += 1_000_000e18; // claim carol can carry far more
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.AdlInvalidProof.selector, 0, 0));
        engine.deleverage(att, sigs, fills);
    }

    /// Guards: a bankrupt counterparty that deleveraging leaves flat is not left as unflagged negative cash.
    function test_bankruptCounterpartyLeftFlatIsNotHiddenBadDebt() public {
        // frank sells alice 2 more perpetuals at 3,000 and spends the proceeds on 60 calls (strike
        // 3,000) at 150, on credit: the calls expire worthless at ETH 1,000 and settle for nothing
        uint256 frankKey = 0xF4A;
        address frank = vm.addr(frankKey);
        fund(frank, 1_000);
        fill(
            order(frank, perpId, -2e18, 3_000e18, 1),
            frankKey,
            alice,
            2e18,
            quote(-6_000e18, 600e18, 36_000e18, 7_200e18)
        );
        fill(
            order(dave, callId, -60e18, 150e18, 5), daveKey, frank, 60e18, quote(-9_000e18, 1_800e18, 3_000e18, 600e18)
        );
        vm.warp(expiry);
        SettlementPrice memory sp =
            SettlementPrice({underlying: ETH, expiry: expiry, price: MARK, snapshotTime: expiry});
        ch.postSettlementPrice(sp, oracleSignPrice(sp));
        uint256[] memory calls = new uint256[](1);
        calls[0] = callId;
        engine.settle(frank, calls);
        // frank: cash −2,004.5 and short 2 perpetuals (−2,000 at the mark): equity −4,004.5
        assertEq(ch.cashOf(frank) - 2 * int256(MARK), -4_004.5e18, "frank bankrupt, holding only the short");
        // alice (long 12) is deleveraged against frank (ranked first), carol, then bob
        uint256[] memory ids = new uint256[](1);
        ids[0] = perpId;
        uint256[] memory marks = new uint256[](1);
        marks[0] = MARK;
        bytes32[] memory roots = new bytes32[](1);
        address[] memory ranked = new address[](3);
        (ranked[0], ranked[1], ranked[2]) = (frank, carol, bob);
        int256[] memory values = new int256[](3);
        (values[0], values[1], values[2]) = (-2_000e18, carolValue(), bobValue());
        AdlFill[] memory fills;
        (roots[0], fills) = queueWithValues(0, perpId, ranked, values);
        (AdlAttestation memory att, bytes memory sigs) = adlAttestation(alice, ids, marks, roots);
        engine.deleverage(att, sigs, fills);
        assertGe(ch.cashOf(alice), 0, "alice resolved");
        assertLt(ch.cashOf(alice), 10, "to the wei");
        assertEq(ch.openInstruments(frank).length, 0, "frank left flat");
        assertEq(ch.cashOf(frank), -4_004.5e18, "with his deficit as cash");
        assertTrue(ch.flagged(frank), "frank's bad debt is not flagged");
        assertTrue(ch.withdrawalsGated(), "withdrawals open over frank's bad debt");
    }
}

/// @notice The same plan over fuzzed equities: carol and bob levered (2,500 and 3,000 at the
///         marks) plus fuzzed deposits, so the queue sometimes carries everything and sometimes not.
contract AdlSolvencyFuzzTest is BankruptcyFixture {
    function setUp() public {
        setUpBankruptcy(true);
    }

    function equityAtMarks(address a) internal view returns (int256) {
        return ch.cashOf(a) + (a == carol ? carolValue() : bobValue());
    }

    /// Guards: no counterparty ends below zero; whatever the queue cannot carry stays flagged.
    function testFuzz_noCounterpartyEndsBelowZero(uint256 carolDeposit, uint256 bobDeposit) public {
        carolDeposit = bound(carolDeposit, 0, 12_000);
        bobDeposit = bound(bobDeposit, 0, 12_000);
        if (carolDeposit != 0) fund(carol, carolDeposit);
        if (bobDeposit != 0) fund(bob, bobDeposit);
        int256 carolBefore = equityAtMarks(carol);
        int256 bobBefore = equityAtMarks(bob);
        (AdlAttestation memory att, bytes memory sigs, AdlFill[] memory fills) = alicePlan();
        engine.deleverage(att, sigs, fills);
        int256 carolAfter = equityAtMarks(carol);
        int256 bobAfter = equityAtMarks(bob);
        assertGe(carolAfter, 0, "carol never below zero");
        assertGe(bobAfter, 0, "bob never below zero");
        int256 charged = carolBefore - carolAfter + bobBefore - bobAfter;
        int256 uncovered = ch.cashOf(alice) < 0 ? -ch.cashOf(alice) : int256(0);
        assertEq(charged + uncovered, 9_915e18, "haircut charged or left flagged, nothing lost");
        assertEq(ch.flagged(alice), uncovered > 0, "flagged iff something is left");
        assertEq(ch.withdrawalsGated(), uncovered > 0, "gated iff something is left");
        assertEq(usdc.balanceOf(address(ch)) * 1e12, uint256(ch.totalCash()) + ch.protocolFees(), "custody");
    }
}
