// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ClearinghouseFixture} from "../utils/ClearinghouseFixture.sol";
import {IClearinghouse, SettlementPrice} from "../../../contracts/interfaces/IClearinghouse.sol";

contract SettlementTest is ClearinghouseFixture {
    function setUp() public {
        setUpClearinghouse(6, 3, 2);
        fund(alice, 100_000);
        fund(bob, 100_000);
        // alice long 2 calls and short 1 put (both 3000 strike), bob the other sides
        fill(order(bob, callId, -2e18, 150e18, 1), bobKey, alice, 2e18, quote(-300e18, 5_000e18, 300e18, 1_000e18));
        fill(order(bob, putId, 1e18, 120e18, 2), bobKey, alice, 1e18, quote(-180e18, 5_000e18, 180e18, 1_000e18));
    }

    function price(uint256 p) internal view returns (SettlementPrice memory) {
        return SettlementPrice({underlying: ETH, expiry: expiry, price: p});
    }

    function test_cannotPostBeforeExpiry() public {
        SettlementPrice memory sp = price(3_500e18);
        bytes memory sigs = oracleSignPrice(sp);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.NotExpired.selector, expiry));
        ch.postSettlementPrice(sp, sigs);
    }

    function test_postOnceWithThreshold() public {
        vm.warp(expiry);
        SettlementPrice memory sp = price(3_500e18);
        bytes memory under = signDigest(ch.settlementPriceDigest(sp), keysSlice(0, 1));
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.NotEnoughSignatures.selector, 1, 2));
        ch.postSettlementPrice(sp, under);
        ch.postSettlementPrice(sp, oracleSignPrice(sp));
        assertEq(ch.settlementPrices(ETH, expiry), 3_500e18, "posted");
        SettlementPrice memory other = price(2_000e18);
        bytes memory otherSigs = oracleSignPrice(other);
        vm.expectRevert(IClearinghouse.SettlementPriceAlreadySet.selector);
        ch.postSettlementPrice(other, otherSigs);
    }

    function test_settleCallInTheMoneyPutOut() public {
        vm.warp(expiry);
        ch.postSettlementPrice(price(3_500e18), oracleSignPrice(price(3_500e18)));
        int256 aliceBefore = ch.cashOf(alice);
        int256 bobBefore = ch.cashOf(bob);
        uint256[] memory ids = new uint256[](2);
        ids[0] = callId;
        ids[1] = putId;
        vm.prank(carol); // anyone may trigger settlement
        ch.settle(alice, ids);
        assertEq(ch.cashOf(alice) - aliceBefore, 1_000e18, "2 calls x 500 intrinsic; put worthless");
        assertEq(ch.openInstruments(alice).length, 0, "alice settled out");
        assertEq(ch.netSettlementPayouts(), 1_000e18, "paid ahead of bob");
        ch.settle(bob, ids);
        assertEq(ch.cashOf(bob) - bobBefore, -1_000e18, "bob pays");
        assertEq(ch.netSettlementPayouts(), 0, "zero-sum once both settled");
        assertEq(usdc.balanceOf(address(ch)) * 1e12, uint256(ch.totalCash()) + ch.protocolFees(), "custody");
    }

    function test_settlePutInTheMoney() public {
        vm.warp(expiry + 1);
        ch.postSettlementPrice(price(2_500e18), oracleSignPrice(price(2_500e18)));
        uint256[] memory ids = new uint256[](2);
        ids[0] = callId;
        ids[1] = putId;
        int256 before = ch.cashOf(alice);
        ch.settle(alice, ids);
        assertEq(ch.cashOf(alice) - before, -500e18, "short put pays 500; calls worthless");
    }

    function test_settleNeedsPriceAndExpiry() public {
        uint256[] memory ids = new uint256[](1);
        ids[0] = callId;
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.NotExpired.selector, expiry));
        ch.settle(alice, ids);
        vm.warp(expiry);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.SettlementPriceMissing.selector, ETH, expiry));
        ch.settle(alice, ids);
        ids[0] = perpId;
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.NotExpired.selector, uint64(0)));
        ch.settle(alice, ids);
    }

    function testFuzz_settlementIsZeroSum(uint96 p) public {
        p = uint96(bound(p, 1, 20_000e18));
        vm.warp(expiry);
        ch.postSettlementPrice(price(p), oracleSignPrice(price(p)));
        uint256[] memory ids = new uint256[](2);
        ids[0] = callId;
        ids[1] = putId;
        ch.settle(alice, ids);
        ch.settle(bob, ids);
        // longs are paid rounded down and shorts pay rounded up: never more out than in
        assertLe(ch.netSettlementPayouts(), 0, "no money created");
        assertGe(ch.netSettlementPayouts(), -2, "rounding only");
    }
}
