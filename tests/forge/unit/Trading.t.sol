// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ClearinghouseFixture} from "../utils/ClearinghouseFixture.sol";
import {
    IClearinghouse,
    InstrumentKind,
    MarginAttestation,
    Order
} from "../../../contracts/interfaces/IClearinghouse.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Digests} from "../utils/Digests.sol";
import {Clearinghouse} from "../../../contracts/core/Clearinghouse.sol";

contract TradingTest is ClearinghouseFixture {
    using Digests for Clearinghouse;

    function setUp() public {
        setUpClearinghouse(6, 3, 2);
        fund(alice, 100_000);
        fund(bob, 100_000);
    }

    function test_fullFillMovesPositionsCashAndFee() public {
        // bob (maker) buys 2 calls at 150 from alice (taker)
        Order memory o = order(bob, callId, 2e18, 150e18, 1);
        bytes32 h = ch.orderDigest(o);
        vm.expectEmit(true, true, true, true);
        emit IClearinghouse.OrderFilled(h, bob, alice, callId, 2e18, 150e18, 0.15e18);
        fill(o, bobKey, alice, 2e18, quote(300e18, 1_000e18, -300e18, 2_000e18));
        assertEq(ch.positionOf(bob, callId), 2e18, "bob long 2");
        assertEq(ch.positionOf(alice, callId), -2e18, "alice short 2");
        assertEq(ch.cashOf(bob), int256(100_000e18 - 300e18), "bob paid premium");
        // alice received 300 and paid 0.05% taker fee on it
        assertEq(ch.cashOf(alice), int256(100_000e18 + 300e18 - 0.15e18), "alice got premium less fee");
        assertEq(ch.protocolFees(), 0.15e18, "fee held");
        assertEq(ch.filled(h), 2e18, "fully filled");
        assertEq(ch.openInstruments(alice).length, 1, "one open position");
    }

    function test_partialFillsUpToSize() public {
        Order memory o = order(bob, perpId, -3e18, 3_000e18, 1);
        fill(o, bobKey, alice, 1e18, quote(-3_000e18, 1_000e18, 3_000e18, 1_000e18));
        fill(o, bobKey, carolFunded(), 2e18, quote(-9_000e18, 3_000e18, 6_000e18, 2_000e18));
        assertEq(ch.positionOf(bob, perpId), -3e18, "bob sold 3 in two fills");
        assertEq(ch.filled(ch.orderDigest(o)), 3e18, "filled");
        expectFillRevert(
            o,
            bobKey,
            alice,
            1,
            quote(0, 0, 0, 0),
            abi.encodeWithSelector(IClearinghouse.OrderOverfilled.selector, 0, 1)
        );
    }

    function test_positionsStayZeroSum() public {
        fill(
            order(bob, perpId, -3e18, 3_000e18, 1), bobKey, alice, 3e18, quote(-9_000e18, 3_000e18, 9_000e18, 3_000e18)
        );
        fill(
            order(alice, perpId, -1e18, 3_100e18, 1),
            aliceKey,
            bob,
            1e18,
            quote(6_000e18, 2_000e18, -6_000e18, 2_000e18)
        );
        assertEq(ch.positionOf(alice, perpId) + ch.positionOf(bob, perpId), 0, "zero-sum");
        assertEq(ch.positionOf(alice, perpId), 2e18, "alice net long 2");
    }

    function test_closingAPositionRemovesIt() public {
        fill(
            order(bob, perpId, -1e18, 3_000e18, 1), bobKey, alice, 1e18, quote(-3_000e18, 1_000e18, 3_000e18, 1_000e18)
        );
        fill(order(bob, perpId, 1e18, 3_000e18, 2), bobKey, alice, 1e18, quote(0, 0, 0, 0));
        assertEq(ch.openInstruments(alice).length, 0, "alice flat");
        assertEq(ch.openInstruments(bob).length, 0, "bob flat");
    }

    function test_takerBelowImRejected() public {
        Order memory o = order(bob, perpId, -1e18, 3_000e18, 1);
        expectFillRevert(
            o,
            bobKey,
            alice,
            1e18,
            quote(-3_000e18, 1_000e18, 3_000e18, 200_000e18),
            abi.encodeWithSelector(
                IClearinghouse.InsufficientEquity.selector, int256(100_000e18 - 1.5e18), uint256(200_000e18)
            )
        );
    }

    function test_makerBelowImRejected() public {
        Order memory o = order(bob, perpId, -1e18, 3_000e18, 1);
        expectFillRevert(
            o,
            bobKey,
            alice,
            1e18,
            quote(-3_000e18, 200_000e18, 3_000e18, 1_000e18),
            abi.encodeWithSelector(IClearinghouse.InsufficientEquity.selector, int256(100_000e18), uint256(200_000e18))
        );
    }

    function test_badMakerSignatureRejected() public {
        Order memory o = order(bob, perpId, -1e18, 3_000e18, 1);
        (MarginAttestation memory ma, MarginAttestation memory ta) =
            postTradeAttestations(o, alice, 1e18, quote(-3_000e18, 1_000e18, 3_000e18, 1_000e18));
        bytes memory forged = signOrder(o, carolKey);
        bytes memory maSigs = oracleSign(ma);
        bytes memory taSigs = oracleSign(ta);
        vm.prank(alice);
        vm.expectRevert(IClearinghouse.InvalidOrderSignature.selector);
        ch.fillOrder(o, forged, 1e18, ma, maSigs, ta, taSigs);
    }

    function test_expiredOrderRejected() public {
        Order memory o = order(bob, perpId, -1e18, 3_000e18, 1);
        bytes memory makerSig = signOrder(o, bobKey);
        vm.warp(o.deadline + 1);
        MarginAttestation memory none;
        vm.prank(alice);
        vm.expectRevert(IClearinghouse.OrderExpired.selector);
        ch.fillOrder(o, makerSig, 1e18, none, "", none, "");
    }

    function test_cancelledOrderRejected() public {
        Order memory o = order(bob, perpId, -1e18, 3_000e18, 1);
        bytes memory makerSig = signOrder(o, bobKey);
        vm.prank(alice);
        vm.expectRevert(IClearinghouse.NotOrderMaker.selector);
        ch.cancelOrder(o);
        vm.prank(bob);
        ch.cancelOrder(o);
        MarginAttestation memory none;
        vm.prank(alice);
        vm.expectRevert(IClearinghouse.OrderNoLongerValid.selector);
        ch.fillOrder(o, makerSig, 1e18, none, "", none, "");
    }

    function test_minNonceCancelsOlderOrders() public {
        Order memory o = order(bob, perpId, -1e18, 3_000e18, 5);
        bytes memory makerSig = signOrder(o, bobKey);
        vm.prank(bob);
        ch.raiseMinNonce(6);
        MarginAttestation memory none;
        vm.prank(alice);
        vm.expectRevert(IClearinghouse.OrderNoLongerValid.selector);
        ch.fillOrder(o, makerSig, 1e18, none, "", none, "");
    }

    function test_selfTradeRejected() public {
        Order memory o = order(bob, perpId, -1e18, 3_000e18, 1);
        bytes memory makerSig = signOrder(o, bobKey);
        MarginAttestation memory none;
        vm.prank(bob);
        vm.expectRevert(IClearinghouse.SelfTrade.selector);
        ch.fillOrder(o, makerSig, 1e18, none, "", none, "");
    }

    function test_tradingPausedByGuardian() public {
        vm.prank(address(0xBAD));
        vm.expectRevert(IClearinghouse.NotGuardian.selector);
        ch.setPaused(true, false);
        vm.prank(guardian);
        ch.setPaused(true, false);
        Order memory o = order(bob, perpId, -1e18, 3_000e18, 1);
        bytes memory makerSig = signOrder(o, bobKey);
        MarginAttestation memory none;
        vm.prank(alice);
        vm.expectRevert(IClearinghouse.TradingPaused.selector);
        ch.fillOrder(o, makerSig, 1e18, none, "", none, "");
    }

    function test_expiredInstrumentCannotTrade() public {
        Order memory o = order(bob, callId, 1e18, 100e18, 1);
        vm.warp(expiry);
        o.deadline = uint64(block.timestamp + 10);
        expectFillRevert(
            o,
            bobKey,
            alice,
            1e18,
            quote(0, 0, 0, 0),
            abi.encodeWithSelector(IClearinghouse.InstrumentExpired.selector, callId)
        );
    }

    function test_unknownInstrumentRejected() public {
        Order memory o = order(bob, 99, 1e18, 100e18, 1);
        bytes memory makerSig = signOrder(o, bobKey);
        MarginAttestation memory none;
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.UnknownInstrument.selector, 99));
        ch.fillOrder(o, makerSig, 1e18, none, "", none, "");
    }

    function test_positionCapEnforced() public {
        vm.startPrank(owner);
        uint256[] memory ids = new uint256[](9);
        for (uint256 i; i < 9; ++i) {
            ids[i] = ch.listInstrument(ETH, InstrumentKind.Call, (3000 + i * 100) * 1e18, expiry);
        }
        vm.stopPrank();
        for (uint256 i; i < 8; ++i) {
            fill(order(bob, ids[i], 1e18, 10e18, i + 1), bobKey, alice, 1e18, quote(0, 0, 0, 0));
        }
        Order memory o = order(bob, ids[8], 1e18, 10e18, 9);
        expectFillRevert(
            o,
            bobKey,
            alice,
            1e18,
            quote(0, 0, 0, 0),
            abi.encodeWithSelector(IClearinghouse.TooManyPositions.selector, 8)
        );
    }

    function test_listInstrumentValidation() public {
        vm.startPrank(owner);
        vm.expectRevert(IClearinghouse.InvalidInstrument.selector);
        ch.listInstrument(bytes32(0), InstrumentKind.Perpetual, 0, 0);
        vm.expectRevert(IClearinghouse.InvalidInstrument.selector);
        ch.listInstrument(ETH, InstrumentKind.Perpetual, 1, 0);
        vm.expectRevert(IClearinghouse.InvalidInstrument.selector);
        ch.listInstrument(ETH, InstrumentKind.Call, 0, expiry);
        vm.expectRevert(IClearinghouse.InvalidInstrument.selector);
        ch.listInstrument(ETH, InstrumentKind.Put, 1e18, uint64(block.timestamp));
        vm.stopPrank();
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, alice));
        ch.listInstrument(ETH, InstrumentKind.Perpetual, 0, 0);
    }

    function testFuzz_fillConservesCash(uint64 amount, uint96 price, bool makerBuys) public {
        amount = uint64(bound(amount, 1, 50e18));
        price = uint96(bound(price, 1, 5_000e18));
        int256 size = makerBuys ? int256(uint256(amount)) : -int256(uint256(amount));
        int256 totalBefore = ch.totalCash();
        fill(order(bob, perpId, size, price, 1), bobKey, alice, amount, quote(0, 0, 0, 0));
        assertEq(ch.totalCash() + int256(ch.protocolFees()), totalBefore, "cash + fees conserved");
        assertEq(ch.positionOf(alice, perpId) + ch.positionOf(bob, perpId), 0, "zero-sum");
        assertEq(usdc.balanceOf(address(ch)) * 1e12, uint256(ch.totalCash()) + ch.protocolFees(), "custody");
    }

    function carolFunded() internal returns (address) {
        fund(carol, 100_000);
        return carol;
    }
}
