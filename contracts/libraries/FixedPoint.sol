// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/// @dev One unit of collateral, and 100% of any share, in 18-decimal fixed point.
uint256 constant WAD = 1e18;

/// @title FixedPoint
/// @notice 18-decimal fixed-point arithmetic and token-unit conversion with explicit rounding.
/// @dev The protocol rounds every requirement up and every payout down, so each helper names its
///      direction. All internal amounts are WAD (1e18 = one unit of collateral).
library FixedPoint {
    /// @dev Largest token precision accepted as collateral; beyond it scaling could overflow.
    uint8 internal constant MAX_TOKEN_DECIMALS = 36;

    /// @notice Thrown when a token amount is converted for a token with more than 36 decimals.
    error TokenDecimalsTooLarge(uint8 decimals);

    /// @notice x * y / WAD, rounded down.
    function mulWadDown(uint256 x, uint256 y) internal pure returns (uint256) {
        return Math.mulDiv(x, y, WAD);
    }

    /// @notice x * y / WAD, rounded up.
    function mulWadUp(uint256 x, uint256 y) internal pure returns (uint256) {
        return Math.mulDiv(x, y, WAD, Math.Rounding.Ceil);
    }

    /// @notice x * y / WAD for a signed x, rounded toward −∞ (the conservative side for a value
    ///         credited to an account).
    function mulWadFloor(int256 x, uint256 y) internal pure returns (int256) {
        if (x >= 0) return int256(mulWadDown(uint256(x), y));
        return -int256(mulWadUp(uint256(-x), y));
    }

    /// @notice x * WAD / y, rounded down.
    function divWadDown(uint256 x, uint256 y) internal pure returns (uint256) {
        return Math.mulDiv(x, WAD, y);
    }

    /// @notice x * WAD / y, rounded up.
    function divWadUp(uint256 x, uint256 y) internal pure returns (uint256) {
        return Math.mulDiv(x, WAD, y, Math.Rounding.Ceil);
    }

    /// @notice Converts a token amount with `decimals` to WAD. Exact when decimals <= 18.
    /// @dev For tokens with more than 18 decimals the sub-WAD remainder is dropped (rounded down),
    ///      which is the conservative direction for credited deposits.
    function toWad(uint256 amount, uint8 decimals) internal pure returns (uint256) {
        if (decimals > MAX_TOKEN_DECIMALS) revert TokenDecimalsTooLarge(decimals);
        if (decimals <= 18) return amount * 10 ** (18 - decimals);
        return amount / 10 ** (decimals - 18);
    }

    /// @notice Converts WAD to token units, rounded down (what the protocol pays out).
    function fromWadDown(uint256 wad, uint8 decimals) internal pure returns (uint256) {
        if (decimals > MAX_TOKEN_DECIMALS) revert TokenDecimalsTooLarge(decimals);
        if (decimals <= 18) return wad / 10 ** (18 - decimals);
        return wad * 10 ** (decimals - 18);
    }

    /// @notice Converts WAD to token units, rounded up (what the protocol requires).
    function fromWadUp(uint256 wad, uint8 decimals) internal pure returns (uint256) {
        if (decimals > MAX_TOKEN_DECIMALS) revert TokenDecimalsTooLarge(decimals);
        if (decimals <= 18) return Math.ceilDiv(wad, 10 ** (18 - decimals));
        return wad * 10 ** (decimals - 18);
    }
}
