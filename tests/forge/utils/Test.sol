// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Vm} from "./Vm.sol";

/// @notice Minimal base for forge tests: the cheatcode handle, assertions that name the values on
///         failure, `bound` for fuzz inputs, and the invariant-target hooks forge looks for.
abstract contract Test {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    /// @dev forge reads this to decide whether the test failed outside a revert.
    bool public IS_TEST = true;

    error AssertionFailed(string message);

    // --- invariant targets (read by forge before an invariant campaign) ---

    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    address[] private _targetContracts;
    FuzzSelector[] private _targetSelectors;
    address[] private _targetSenders;

    function targetContract(address target) internal {
        _targetContracts.push(target);
    }

    function targetSelector(FuzzSelector memory selector) internal {
        _targetSelectors.push(selector);
    }

    function targetSender(address sender) internal {
        _targetSenders.push(sender);
    }

    function targetContracts() public view returns (address[] memory) {
        return _targetContracts;
    }

    function targetSelectors() public view returns (FuzzSelector[] memory) {
        return _targetSelectors;
    }

    function targetSenders() public view returns (address[] memory) {
        return _targetSenders;
    }

    // --- fuzz helpers ---

    /// @notice Maps any x into [min, max] without discarding runs.
    function bound(uint256 x, uint256 min, uint256 max) internal pure returns (uint256) {
        require(min <= max, "bound: min > max");
        if (x >= min && x <= max) return x;
        uint256 size = max - min;
        if (size == type(uint256).max) return x;
        return min + (x % (size + 1));
    }

    function bound(int256 x, int256 min, int256 max) internal pure returns (int256) {
        require(min <= max, "bound: min > max");
        uint256 size = uint256(max - min);
        // shift into unsigned space, bound, shift back
        uint256 shifted = uint256(x) ^ (1 << 255);
        uint256 lo = uint256(min) ^ (1 << 255);
        uint256 b = bound(shifted, lo, lo + size);
        return int256(b ^ (1 << 255));
    }

    // --- assertions ---

    function fail(string memory message) internal pure {
        revert AssertionFailed(message);
    }

    function assertTrue(bool condition, string memory message) internal pure {
        if (!condition) fail(message);
    }

    function assertTrue(bool condition) internal pure {
        assertTrue(condition, "expected true");
    }

    function assertFalse(bool condition, string memory message) internal pure {
        if (condition) fail(message);
    }

    function assertEq(uint256 a, uint256 b, string memory message) internal pure {
        if (a != b) fail(string.concat(message, ": ", _u(a), " != ", _u(b)));
    }

    function assertEq(uint256 a, uint256 b) internal pure {
        assertEq(a, b, "assertEq(uint)");
    }

    function assertEq(int256 a, int256 b, string memory message) internal pure {
        if (a != b) fail(string.concat(message, ": ", _i(a), " != ", _i(b)));
    }

    function assertEq(int256 a, int256 b) internal pure {
        assertEq(a, b, "assertEq(int)");
    }

    function assertEq(address a, address b, string memory message) internal pure {
        if (a != b) fail(message);
    }

    function assertEq(address a, address b) internal pure {
        assertEq(a, b, "assertEq(address)");
    }

    function assertEq(bytes32 a, bytes32 b, string memory message) internal pure {
        if (a != b) fail(message);
    }

    function assertEq(bytes32 a, bytes32 b) internal pure {
        assertEq(a, b, "assertEq(bytes32)");
    }

    function assertEq(bool a, bool b, string memory message) internal pure {
        if (a != b) fail(message);
    }

    function assertLe(uint256 a, uint256 b, string memory message) internal pure {
        if (a > b) fail(string.concat(message, ": ", _u(a), " > ", _u(b)));
    }

    function assertGe(uint256 a, uint256 b, string memory message) internal pure {
        if (a < b) fail(string.concat(message, ": ", _u(a), " < ", _u(b)));
    }

    function assertLt(uint256 a, uint256 b, string memory message) internal pure {
        if (a >= b) fail(string.concat(message, ": ", _u(a), " >= ", _u(b)));
    }

    function assertGt(uint256 a, uint256 b, string memory message) internal pure {
        if (a <= b) fail(string.concat(message, ": ", _u(a), " <= ", _u(b)));
    }

    function assertLe(int256 a, int256 b, string memory message) internal pure {
        if (a > b) fail(string.concat(message, ": ", _i(a), " > ", _i(b)));
    }

    function assertGe(int256 a, int256 b, string memory message) internal pure {
        if (a < b) fail(string.concat(message, ": ", _i(a), " < ", _i(b)));
    }

    function assertLt(int256 a, int256 b, string memory message) internal pure {
        if (a >= b) fail(string.concat(message, ": ", _i(a), " >= ", _i(b)));
    }

    function assertGt(int256 a, int256 b, string memory message) internal pure {
        if (a <= b) fail(string.concat(message, ": ", _i(a), " <= ", _i(b)));
    }

    function assertApproxEqAbs(uint256 a, uint256 b, uint256 maxDelta, string memory message) internal pure {
        uint256 delta = a > b ? a - b : b - a;
        if (delta > maxDelta) fail(string.concat(message, ": |", _u(a), " - ", _u(b), "| > ", _u(maxDelta)));
    }

    // --- formatting ---

    function _u(uint256 value) private pure returns (string memory) {
        if (value == 0) return "0";
        uint256 digits;
        for (uint256 t = value; t != 0; t /= 10) {
            digits++;
        }
        bytes memory buffer = new bytes(digits);
        while (value != 0) {
            buffer[--digits] = bytes1(uint8(48 + (value % 10)));
            value /= 10;
        }
        return string(buffer);
    }

    function _i(int256 value) private pure returns (string memory) {
        if (value >= 0) return _u(uint256(value));
        return string.concat("-", _u(value == type(int256).min ? uint256(1 << 255) : uint256(-value)));
    }
}
