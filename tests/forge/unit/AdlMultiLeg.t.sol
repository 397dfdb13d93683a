// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {LiquidationFixture} from "../utils/LiquidationFixture.sol";
import {AdlAttestation, AdlFill, ILiquidationEngine} from "../../../contracts/interfaces/ILiquidationEngine.sol";

/// @notice One counterparty on several legs of a bankrupt portfolio. Alice is long 10 ETH
///         perpetuals at 3,000 and 10 calls at 100, both from bob; at a mark of 1,000 (calls
///         worthless) her deficit far exceeds the fund, and bob is the only queue member of both legs.
contract AdlMultiLegTest is LiquidationFixture {
    uint256 internal constant MARK = 1_000e18;

    function setUp() public {
        setUpLiquidation(3, 2);
        fund(alice, 10_000);
        fund(bob, 100_000);
        seedFund(100);
        aliceBuysTenPerpsFromBob();
        fill(
            order(bob, callId, -10e18, 100e18, 2),
            bobKey,
            alice,
            10e18,
            quote(-31_000e18, 7_000e18, 31_000e18, 6_000e18)
        );
    }

    /// Guards: a counterparty's first fill moves its state hash; its later fills in the same
    /// deleveraging are still charged against what its leaf allowed (less what it already paid),
    /// instead of being treated as stale and leaving the haircut uncovered.
    function test_counterpartyOnTwoLegsCarriesTheHaircutOnItsSecondFill() public {
        uint256[] memory ids = new uint256[](2);
        (ids[0], ids[1]) = (perpId, callId);
        uint256[] memory marks = new uint256[](2);
        (marks[0], marks[1]) = (MARK, 0);
        address[] memory ranked = new address[](1);
        ranked[0] = bob;
        int256[] memory values = new int256[](1);
        values[0] = -int256(10 * MARK); // bob's portfolio at the marks: short 10 perps, short 10 worthless calls
        bytes32[] memory roots = new bytes32[](2);
        AdlFill[] memory perpFills;
        AdlFill[] memory callFills;
        (roots[0], perpFills) = queueWithValues(0, perpId, ranked, values);
        (roots[1], callFills) = queueWithValues(1, callId, ranked, values);
        (AdlAttestation memory att, bytes memory sigs) = adlAttestation(alice, ids, marks, roots);
        // the call leg first (no haircut on a worthless leg), then the perpetual with all of it
        AdlFill[] memory fills = new AdlFill[](2);
        (fills[0], fills[1]) = (callFills[0], perpFills[0]);

        int256 deficit = -(ch.cashOf(alice) + int256(10 * MARK));
        assertGt(deficit, 100e18, "beyond the fund");
        engine.deleverage(att, sigs, fills);
        assertEq(ch.openInstruments(alice).length, 0, "alice flat");
        assertGe(ch.cashOf(alice), 0, "the whole haircut carried by bob");
        assertFalse(ch.withdrawalsGated(), "no bad debt left");
        assertGe(ch.cashOf(bob) - int256(10 * MARK), 0, "bob solvent at the marks");
    }
}
