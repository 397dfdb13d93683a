// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {LiquidationFixture} from "../utils/LiquidationFixture.sol";
import {IClearinghouse, SettlementPrice} from "../../../contracts/interfaces/IClearinghouse.sol";
import {ILiquidationEngine} from "../../../contracts/interfaces/ILiquidationEngine.sol";
import {Digests} from "../utils/Digests.sol";
import {Clearinghouse} from "../../../contracts/core/Clearinghouse.sol";

contract SettlementTest is LiquidationFixture {
    using Digests for Clearinghouse;

    function setUp() public {
        setUpLiquidation(3, 2);
        fund(alice, 100_000);
        fund(bob, 100_000);
        // alice long 2 calls and short 1 put (both 3000 strike), bob the other sides
        fill(order(bob, callId, -2e18, 150e18, 1), bobKey, alice, 2e18, quote(-300e18, 5_000e18, 300e18, 1_000e18));
        fill(order(bob, putId, 1e18, 120e18, 2), bobKey, alice, 1e18, quote(-180e18, 5_000e18, 180e18, 1_000e18));
    }

    function price(uint256 p) internal view returns (SettlementPrice memory) {
        return SettlementPrice({underlying: ETH, expiry: expiry, price: p, snapshotTime: expiry});
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
        // the long calls wait for the short calls (the payers) to settle
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.PayersNotSettled.selector, callId, 2e18));
        engine.settle(alice, ids);
        vm.prank(carol); // anyone may trigger settlement
        engine.settle(bob, ids);
        assertEq(ch.cashOf(bob) - bobBefore, -1_000e18, "bob pays");
        assertEq(ch.netSettlementPayouts(), -1_000e18, "paid in ahead of alice");
        engine.settle(alice, ids);
        assertEq(ch.cashOf(alice) - aliceBefore, 1_000e18, "2 calls x 500 intrinsic; put worthless");
        assertEq(ch.openInstruments(alice).length, 0, "alice settled out");
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
        engine.settle(alice, ids);
        assertEq(ch.cashOf(alice) - before, -500e18, "short put pays 500; calls worthless");
    }

    function test_settleNeedsPriceAndExpiry() public {
        uint256[] memory ids = new uint256[](1);
        ids[0] = callId;
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.NotExpired.selector, expiry));
        engine.settle(alice, ids);
        vm.warp(expiry);
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.SettlementPriceMissing.selector, ETH, expiry));
        engine.settle(alice, ids);
        ids[0] = perpId;
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.NotExpired.selector, uint64(0)));
        engine.settle(alice, ids);
    }

    function testFuzz_settlementIsZeroSum(uint96 p) public {
        p = uint96(bound(p, 1, 20_000e18));
        vm.warp(expiry);
        ch.postSettlementPrice(price(p), oracleSignPrice(price(p)));
        uint256[] memory ids = new uint256[](2);
        ids[0] = callId;
        ids[1] = putId;
        // payers first: bob when the calls finish in the money, alice when the put does
        (address first, address second) = p > 3_000e18 ? (bob, alice) : (alice, bob);
        engine.settle(first, ids);
        engine.settle(second, ids);
        // longs are paid rounded down and shorts pay rounded up: never more out than in
        assertLe(ch.netSettlementPayouts(), 0, "no money created");
        assertGe(ch.netSettlementPayouts(), -2, "rounding only");
    }

    // ------------------------------------------------------------------ the price is the market's at the expiry

    function priceAt(uint256 p, uint64 snapshotTime) internal view returns (SettlementPrice memory) {
        return SettlementPrice({underlying: ETH, expiry: expiry, price: p, snapshotTime: snapshotTime});
    }

    /// Guards: a price read after the expiry (picked from the path after it) is refused.
    function test_settlementPriceFromAfterTheExpiryRefused() public {
        vm.warp(expiry + 1 hours);
        SettlementPrice memory sp = priceAt(3_500e18, expiry + 1);
        bytes memory sigs = oracleSignPrice(sp);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.SettlementPriceNotAtExpiry.selector, expiry + 1, expiry));
        ch.postSettlementPrice(sp, sigs);
    }

    /// Guards: a price older than maxSnapshotAge before the expiry is refused; the edge is accepted.
    function test_settlementPriceOlderThanMaxAgeBeforeTheExpiryRefused() public {
        vm.warp(expiry + 1 hours);
        uint64 maxAge = ch.riskConfig().maxSnapshotAge;
        SettlementPrice memory stale = priceAt(3_500e18, expiry - maxAge - 1);
        bytes memory sigs = oracleSignPrice(stale);
        vm.expectRevert(
            abi.encodeWithSelector(IClearinghouse.SettlementPriceNotAtExpiry.selector, expiry - maxAge - 1, expiry)
        );
        ch.postSettlementPrice(stale, sigs);
        SettlementPrice memory edge = priceAt(3_500e18, expiry - maxAge);
        ch.postSettlementPrice(edge, oracleSignPrice(edge));
        assertEq(ch.settlementPrices(ETH, expiry), 3_500e18, "the oldest acceptable reading");
    }

    /// Guards: a later reading is refused, and relabelling it as the expiry's breaks the signatures.
    function test_settlementSnapshotTimeIsSigned() public {
        vm.warp(expiry + 1 hours);
        SettlementPrice memory later = priceAt(3_500e18, expiry + 600);
        bytes memory sigs = oracleSignPrice(later);
        vm.expectRevert(
            abi.encodeWithSelector(IClearinghouse.SettlementPriceNotAtExpiry.selector, expiry + 600, expiry)
        );
        ch.postSettlementPrice(later, sigs);
        later.snapshotTime = expiry;
        vm.expectRevert(); // the signatures recover to other addresses
        ch.postSettlementPrice(later, sigs);
        assertEq(ch.settlementPrices(ETH, expiry), 0, "nothing posted");
    }

    /// Guards: accepted iff expiry − maxSnapshotAge ≤ snapshotTime ≤ expiry, however late it is posted.
    function testFuzz_settlementPriceBoundToTheExpiry(uint64 offset, bool after_, uint32 postedLater) public {
        uint64 maxAge = ch.riskConfig().maxSnapshotAge;
        offset = uint64(bound(offset, 0, 2 * uint256(maxAge)));
        uint64 t = after_ ? expiry + offset : expiry - offset;
        vm.warp(uint256(expiry) + 2 * maxAge + bound(postedLater, 0, 30 days));
        SettlementPrice memory sp = priceAt(3_500e18, t);
        bytes memory sigs = oracleSignPrice(sp);
        bool atExpiry = t <= expiry && uint256(t) + maxAge >= expiry;
        if (!atExpiry) {
            vm.expectRevert(abi.encodeWithSelector(IClearinghouse.SettlementPriceNotAtExpiry.selector, t, expiry));
        }
        ch.postSettlementPrice(sp, sigs);
        assertEq(ch.settlementPrices(ETH, expiry), atExpiry ? 3_500e18 : 0, "posted iff read at the expiry");
    }
}
