// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Ownable2Step, Ownable} from "@openzeppelin/contracts/access/Ownable2Step.sol";

/// @title DevStablecoin
/// @notice The collateral token for local chains and testnets: a plain ERC-20 whose decimals are
///         chosen at deployment (6 like USDC, 18 like DAI) and which its owner can mint.
/// @dev Stands in for the real stablecoin a deployment would name; never deploy it on a mainnet.
contract DevStablecoin is ERC20, Ownable2Step {
    uint8 private immutable _decimals;

    constructor(string memory name_, string memory symbol_, uint8 decimals_, address owner_)
        ERC20(name_, symbol_)
        Ownable(owner_)
    {
        _decimals = decimals_;
    }

    /// @inheritdoc ERC20
    function decimals() public view override returns (uint8) {
        return _decimals;
    }

    /// @notice Creates `amount` token units for `to`.
    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }
}
