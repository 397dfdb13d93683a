// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IClearinghouse} from "../interfaces/IClearinghouse.sol";

/// @title PositionBook
/// @notice One account's open positions in as few storage slots as the operations allow.
/// @dev Each open position is one slot: its size (int248) in the low bits and its place in the
///      open list (index + 1) in the top byte, so lookup, update and removal are O(1) without a
///      separate index mapping. The open list packs eight uint32 instrument ids per word, so
///      opening a position usually dirties an existing word instead of allocating new ones.
///      The number of open positions is kept by the caller (packed next to the account's cash).
library PositionBook {
    /// @dev Storage bound of an account's open list. Voluntary trades stop at the governance cap
    ///      (at most half of this bound); liquidation and ADL receipts may go up to this bound, so
    ///      that an empty-book liquidator can always take any account.
    uint256 internal constant MAX_POSITIONS = 64;
    uint256 private constant SIZE_MASK = (uint256(1) << 248) - 1;
    uint256 private constant ID_MASK = 0xffffffff;

    struct Book {
        mapping(uint256 instrumentId => uint256 packed) slots;
        uint256[MAX_POSITIONS / 8] openWords; // eight uint32 ids per word
    }

    function sizeOf(Book storage book, uint256 instrumentId) internal view returns (int256) {
        return int256(int248(uint248(book.slots[instrumentId])));
    }

    /// @notice The instrument id at position `i` of the open list (i < count).
    function idAt(Book storage book, uint256 i) internal view returns (uint256) {
        return (book.openWords[i >> 3] >> ((i & 7) << 5)) & ID_MASK;
    }

    /// @notice The first `count` open instrument ids.
    function ids(Book storage book, uint256 count) internal view returns (uint256[] memory out) {
        out = new uint256[](count);
        uint256 word;
        for (uint256 i; i < count; ++i) {
            if (i & 7 == 0) word = book.openWords[i >> 3];
            out[i] = (word >> ((i & 7) << 5)) & ID_MASK;
        }
    }

    /// @notice Sets a position's size, opening or closing it in the list as needed.
    /// @param count The number of open positions before; @return The number after.
    function set(Book storage book, uint256 instrumentId, int256 newSize, uint256 count, uint256 maxCount)
        internal
        returns (uint256)
    {
        uint256 packed = book.slots[instrumentId];
        uint256 place = packed >> 248; // index + 1, 0 when not open
        if (newSize == 0) {
            if (place == 0) return count;
            uint256 last = count - 1;
            if (place - 1 != last) {
                // move the last open id into the freed place
                uint256 lastId = idAt(book, last);
                _writeId(book, place - 1, lastId);
                book.slots[lastId] = (book.slots[lastId] & SIZE_MASK) | (place << 248);
            }
            delete book.slots[instrumentId];
            return last;
        }
        if (newSize > type(int248).max || newSize < type(int248).min) revert IClearinghouse.PositionTooLarge();
        if (place == 0) {
            if (count >= maxCount) revert IClearinghouse.TooManyPositions(maxCount);
            _writeId(book, count, instrumentId);
            place = ++count;
        }
        book.slots[instrumentId] = (place << 248) | (uint256(newSize) & SIZE_MASK);
        return count;
    }

    function _writeId(Book storage book, uint256 i, uint256 instrumentId) private {
        uint256 w = i >> 3;
        uint256 shift = (i & 7) << 5;
        book.openWords[w] = (book.openWords[w] & ~(ID_MASK << shift)) | (instrumentId << shift);
    }
}
