// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Test} from "../utils/Test.sol";
import {FixedPoint, WAD} from "../../../contracts/libraries/FixedPoint.sol";

/// @dev Exposes the internal library so reverts surface as calls.
contract FixedPointHarness {
    function toWad(uint256 amount, uint8 decimals) external pure returns (uint256) {
        return FixedPoint.toWad(amount, decimals);
    }
}

contract FixedPointTest is Test {
    FixedPointHarness internal harness = new FixedPointHarness();

    function test_toWad_sixDecimals() public pure {
        assertEq(FixedPoint.toWad(1_500_000, 6), 1.5e18, "1.5 USDC");
        assertEq(FixedPoint.fromWadDown(1.5e18, 6), 1_500_000, "back to USDC");
    }

    function test_toWad_rejectsAbsurdDecimals() public {
        vm.expectRevert(abi.encodeWithSelector(FixedPoint.TokenDecimalsTooLarge.selector, uint8(37)));
        harness.toWad(1, 37);
    }

    function test_fromWad_roundsInOppositeDirections() public pure {
        // 1 wei of WAD is less than one unit of a 6-decimal token.
        assertEq(FixedPoint.fromWadDown(1, 6), 0, "payout rounds down");
        assertEq(FixedPoint.fromWadUp(1, 6), 1, "requirement rounds up");
    }

    /// forge-config: default.fuzz.runs = 1024
    function testFuzz_tokenRoundTripIsExact(uint256 amount, uint8 decimals) public pure {
        decimals = uint8(bound(decimals, 0, 18));
        amount = bound(amount, 0, type(uint128).max);
        uint256 wad = FixedPoint.toWad(amount, decimals);
        assertEq(FixedPoint.fromWadDown(wad, decimals), amount, "down round trip");
        assertEq(FixedPoint.fromWadUp(wad, decimals), amount, "up round trip");
    }

    function testFuzz_upNeverBelowDown(uint256 x, uint256 y) public pure {
        x = bound(x, 0, type(uint128).max);
        y = bound(y, 1, type(uint128).max);
        uint256 down = FixedPoint.mulWadDown(x, y);
        uint256 up = FixedPoint.mulWadUp(x, y);
        assertTrue(up == down || up == down + 1, "mulWad: up is down or down + 1");
        uint256 qDown = FixedPoint.divWadDown(x, y);
        uint256 qUp = FixedPoint.divWadUp(x, y);
        assertTrue(qUp == qDown || qUp == qDown + 1, "divWad: up is down or down + 1");
        // The rounded-down product never exceeds the exact value: x*y >= down*WAD.
        assertLe(down * WAD, x * y, "mulWadDown over-credits");
    }

    /// The signed product rounds toward −∞: never above the exact value, less than 1 wei below.
    function testFuzz_mulWadFloorRoundsDown(int256 x, uint256 y) public pure {
        x = int256(bound(uint256(x), 0, type(uint128).max)) - int256(uint256(type(uint128).max) / 2);
        y = bound(y, 0, type(uint128).max);
        int256 floor = FixedPoint.mulWadFloor(x, y);
        int256 exact = x * int256(y);
        assertLe(floor * int256(WAD), exact, "above the exact value");
        assertGt(floor * int256(WAD), exact - int256(WAD), "more than 1 wei below");
    }

    function testFuzz_wadToTokenBrackets(uint256 wad, uint8 decimals) public pure {
        decimals = uint8(bound(decimals, 0, 18));
        wad = bound(wad, 0, type(uint128).max);
        uint256 down = FixedPoint.fromWadDown(wad, decimals);
        uint256 up = FixedPoint.fromWadUp(wad, decimals);
        assertLe(FixedPoint.toWad(down, decimals), wad, "down is at most the value");
        assertGe(FixedPoint.toWad(up, decimals), wad, "up is at least the value");
    }
}
