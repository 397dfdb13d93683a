// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {BackstopFixture} from "../utils/BackstopFixture.sol";
import {MarginAttestation} from "../../../contracts/interfaces/IClearinghouse.sol";
import {
    AdlAttestation,
    AdlFill,
    ILiquidationEngine,
    LiquidationRequest
} from "../../../contracts/interfaces/ILiquidationEngine.sol";

/// @notice The backstop: an account below MM that no liquidator takes for BACKSTOP_DELAY is closed
///         against the ADL queue at the marks (the book: BackstopFixture — an ordinary liquidation
///         case that no keeper takes).
contract BackstopTest is BackstopFixture {
    /// Guards: a solvent account below MM cannot be deleveraged without a stall report (ADL is
    /// for bankruptcies beyond the fund only).
    function test_solventAccountNeedsAStallReport() public {
        (AdlAttestation memory att, bytes memory sigs, AdlFill[] memory fills) = plan();
        int256 equity = ch.cashOf(alice) + int256(10 * MARK);
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.NotBankrupt.selector, equity));
        engine.deleverage(att, sigs, fills);
    }

    /// Guards: the backstop waits BACKSTOP_DELAY, then closes the whole account at the marks with
    /// no haircut; the account keeps its equity and the fund pays nothing.
    function test_backstopClosesAStalledAccountAtTheMarks() public {
        report();
        (AdlAttestation memory att, bytes memory sigs, AdlFill[] memory fills) = plan();
        uint256 due = block.timestamp + engine.BACKSTOP_DELAY();
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.BackstopNotDue.selector, due));
        engine.deleverage(att, sigs, fills);

        vm.warp(due);
        (att, sigs, fills) = plan(); // a fresh plan (the old one has expired)
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.BackstopNotDue.selector, due));
        engine.deleverage(att, sigs, fills); // not yet confirmed after the delay
        report(); // still below MM, same state: confirmed
        int256 equity = ch.cashOf(alice) + int256(10 * MARK);
        int256 bobCash = ch.cashOf(bob);
        uint256 fundBefore = fundContract.fundBalance();
        engine.deleverage(att, sigs, fills);
        assertEq(ch.openInstruments(alice).length, 0, "closed");
        assertEq(ch.cashOf(alice), equity, "alice keeps her equity at the marks");
        assertEq(ch.positionOf(bob, perpId), 0, "bob closed at the mark");
        assertEq(ch.cashOf(bob) - bobCash, -int256(6 * MARK), "bob paid exactly the mark, no haircut");
        assertEq(fundContract.fundBalance(), fundBefore, "the fund paid nothing");
        assertFalse(ch.withdrawalsGated(), "no gate");
        (, uint64 since,,) = engine.stalls(alice);
        assertEq(since, 0, "stall record cleared");
    }

    /// Guards: any liquidation in between (the state hash moves) voids the report.
    function test_aLiquidationVoidsTheStallReport() public {
        report();
        LiquidationRequest[] memory reqs = new LiquidationRequest[](1);
        reqs[0] = request(alice, int256(10 * MARK), MM);
        (MarginAttestation memory katt, bytes memory ksigs) = keeperNow(0, 0);
        vm.prank(keeper);
        engine.liquidate(reqs, katt, ksigs);
        vm.warp(block.timestamp + engine.BACKSTOP_DELAY());
        uint256 left = uint256(ch.positionOf(alice, perpId));
        uint256[] memory ids = new uint256[](1);
        ids[0] = perpId;
        uint256[] memory marks = new uint256[](1);
        marks[0] = MARK;
        address[] memory ranked = new address[](2);
        ranked[0] = carol;
        ranked[1] = bob;
        bytes32[] memory roots = new bytes32[](1);
        AdlFill[] memory fills;
        (roots[0], fills) = queue(0, perpId, ranked);
        (AdlAttestation memory att, bytes memory sigs) = adlAttestation(alice, ids, marks, roots);
        vm.expectRevert(); // NotBankrupt: no valid stall report for the new state
        engine.deleverage(att, sigs, fills);
        assertEq(uint256(ch.positionOf(alice, perpId)), left, "untouched");
    }

    /// Guards: a repeated report does not restart the clock, and a report needs equity < MM.
    function test_reportRules() public {
        report();
        (, uint64 first,,) = engine.stalls(alice);
        vm.warp(block.timestamp + 30);
        report();
        (, uint64 again, uint64 confirmed,) = engine.stalls(alice);
        assertEq(again, first, "first report time kept");
        assertEq(confirmed, block.timestamp, "and confirmed now");
        // the same snapshot again confirms nothing new
        (MarginAttestation memory same, bytes memory ssigs) = aliceAt(MM);
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.StaleStallReport.selector, confirmed, confirmed));
        engine.reportStall(alice, same, ssigs);
        // a report within 2 × BACKSTOP_DELAY of the last continues the episode; a longer silence ends it
        vm.warp(block.timestamp + 2 * engine.BACKSTOP_DELAY());
        report();
        (, again,,) = engine.stalls(alice);
        assertEq(again, first, "continued at the gap's limit");
        vm.warp(block.timestamp + 2 * engine.BACKSTOP_DELAY() + 1);
        report();
        (, again,,) = engine.stalls(alice);
        assertEq(again, block.timestamp, "a new episode after a longer silence");
        MarginAttestation memory healthy = attestation(bob, 0, 1_000e18, 800e18);
        bytes memory hsigs = oracleSign(healthy);
        vm.expectRevert(); // NotLiquidatable
        engine.reportStall(bob, healthy, hsigs);
    }

    /// Guards: a deposit that cures the account (equity ≥ the reported MM at the marks) stops it.
    function test_curedAccountIsNotClosed() public {
        report();
        vm.warp(block.timestamp + engine.BACKSTOP_DELAY());
        report(); // confirmed
        fund(alice, 5_000); // then cured: same state, more cash
        (AdlAttestation memory att, bytes memory sigs, AdlFill[] memory fills) = plan();
        int256 equity = ch.cashOf(alice) + int256(10 * MARK);
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.NotLiquidatable.selector, equity, MM));
        engine.deleverage(att, sigs, fills);
    }

    /// Guards: a confirmation older than BACKSTOP_DELAY does not count — an account that has since
    /// recovered (its MM fell with the price) cannot be closed on the MM of an hour ago, and a
    /// fresh confirmation needs equity below MM now.
    function test_staleConfirmationDoesNotCloseARecoveredAccount() public {
        report();
        uint256 due = block.timestamp + engine.BACKSTOP_DELAY();
        vm.warp(due);
        report(); // confirmed below MM at 2,300
        vm.warp(block.timestamp + 1 hours);
        (AdlAttestation memory att, bytes memory sigs, AdlFill[] memory fills) = plan();
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.BackstopNotDue.selector, due));
        engine.deleverage(att, sigs, fills);
        // now healthy (MM 2,900 at a lower vol): no new confirmation is possible
        MarginAttestation memory now_ = attestation(alice, int256(10 * MARK), 3_625e18, 2_900e18);
        bytes memory nsigs = oracleSign(now_);
        vm.expectRevert(); // NotLiquidatable
        engine.reportStall(alice, now_, nsigs);
    }
}
