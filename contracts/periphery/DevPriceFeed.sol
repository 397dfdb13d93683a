// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Ownable2Step, Ownable} from "@openzeppelin/contracts/access/Ownable2Step.sol";

/// @title DevPriceFeed
/// @notice A Chainlink-style feed (AggregatorV3Interface's read side) whose owner publishes the
///         answers: the local and testnet stand-in for a real oracle network's feed. The risk
///         oracle's feed adapter reads any contract with this interface.
contract DevPriceFeed is Ownable2Step {
    struct Round {
        int256 answer;
        uint64 updatedAt;
    }

    uint8 public immutable decimals;
    string public description;
    uint80 public latestRound;
    mapping(uint80 => Round) internal _rounds;

    event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);

    /// @notice Thrown when a round that was never published is read.
    error NoData();

    constructor(uint8 decimals_, string memory description_, address owner_) Ownable(owner_) {
        decimals = decimals_;
        description = description_;
    }

    /// @notice Publishes a new answer (a new round).
    function setAnswer(int256 answer) external onlyOwner {
        uint80 round = ++latestRound;
        _rounds[round] = Round(answer, uint64(block.timestamp));
        emit AnswerUpdated(answer, round, block.timestamp);
    }

    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return getRoundData(latestRound);
    }

    /// @notice A past round (settlement reads the round at an option's expiry).
    function getRoundData(uint80 roundId)
        public
        view
        returns (uint80, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        Round memory r = _rounds[roundId];
        if (roundId == 0 || r.updatedAt == 0) revert NoData();
        return (roundId, r.answer, r.updatedAt, r.updatedAt, roundId);
    }
}
