// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Ownable2Step, Ownable} from "@openzeppelin/contracts/access/Ownable2Step.sol";

import {IClearinghouse} from "../interfaces/IClearinghouse.sol";
import {IClearinghouseEngineHooks} from "../interfaces/IClearinghouseEngineHooks.sol";
import {IInsuranceFund} from "../interfaces/IInsuranceFund.sol";
import {FixedPoint} from "../libraries/FixedPoint.sol";

/// @title InsuranceFund
/// @notice Holds the insurance balance in its own custody. Only the clearinghouse and the engines
///         it has enabled move money out, and never more than the balance: the fund cannot go
///         negative. Trusting the clearinghouse's engine set (rather than one engine fixed here)
///         means an engine change through the clearinghouse's timelock carries the fund with it.
contract InsuranceFund is IInsuranceFund, Ownable2Step {
    using SafeERC20 for IERC20;

    uint256 public constant MAX_TARGET = 1e33; // a billion billion units: a sanity bound

    IERC20 public immutable token;
    uint8 public immutable tokenDecimals;
    address public immutable clearinghouse;

    uint256 public fundBalance;
    uint256 public target;

    constructor(IERC20 token_, uint8 decimals_, address clearinghouse_, address owner_) Ownable(owner_) {
        if (address(token_) == address(0) || clearinghouse_ == address(0)) revert IClearinghouse.ZeroAddress();
        token = token_;
        tokenDecimals = decimals_;
        clearinghouse = clearinghouse_;
    }

    modifier onlyEngine() {
        if (msg.sender != clearinghouse && !IClearinghouse(clearinghouse).isEngine(msg.sender)) {
            revert IClearinghouseEngineHooks.NotEngine();
        }
        _;
    }

    function setTarget(uint256 target_) external onlyOwner {
        if (target_ > MAX_TARGET) revert TargetOutOfBounds();
        target = target_;
        emit TargetUpdated(target_);
    }

    function health() external view returns (uint256) {
        if (target == 0) return type(uint256).max;
        return FixedPoint.divWadDown(fundBalance, target);
    }

    function deposit(uint256 tokenAmount) external {
        if (tokenAmount == 0) revert IClearinghouse.ZeroAmount();
        token.safeTransferFrom(msg.sender, address(this), tokenAmount);
        uint256 amount = FixedPoint.toWad(tokenAmount, tokenDecimals);
        fundBalance += amount;
        emit Deposited(msg.sender, amount, fundBalance);
    }

    function recordFee(address account, uint256 amount) external onlyEngine {
        fundBalance += amount;
        emit FeeReceived(account, amount, fundBalance);
    }

    function release(address account, uint256 amount) external onlyEngine returns (uint256 tokenAmount) {
        uint256 capped = amount < fundBalance ? amount : fundBalance;
        // Round up so a covered deficit is covered in full, unless that would exceed the balance.
        tokenAmount = FixedPoint.fromWadUp(capped, tokenDecimals);
        if (FixedPoint.toWad(tokenAmount, tokenDecimals) > fundBalance) {
            tokenAmount = FixedPoint.fromWadDown(fundBalance, tokenDecimals);
        }
        if (tokenAmount == 0) return 0;
        uint256 released = FixedPoint.toWad(tokenAmount, tokenDecimals);
        fundBalance -= released;
        token.forceApprove(clearinghouse, tokenAmount);
        emit DeficitCovered(account, released, fundBalance);
    }
}
