// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Test} from "../utils/Test.sol";
import {DevStablecoin} from "../../../contracts/periphery/DevStablecoin.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

contract DevStablecoinTest is Test {
    address internal owner = address(0xA11CE);
    address internal trader = address(0xB0B);
    DevStablecoin internal usdc;

    function setUp() public {
        usdc = new DevStablecoin("Dev USD Coin", "dUSDC", 6, owner);
    }

    function test_decimalsAreChosenAtDeployment() public {
        assertEq(uint256(usdc.decimals()), 6, "usdc decimals");
        DevStablecoin dai = new DevStablecoin("Dev Dai", "dDAI", 18, owner);
        assertEq(uint256(dai.decimals()), 18, "dai decimals");
    }

    function test_ownerMints() public {
        vm.prank(owner);
        usdc.mint(trader, 1_000e6);
        vm.snapshotGasLastCall("DevStablecoin", "mint");
        assertEq(usdc.balanceOf(trader), 1_000e6, "minted balance");
    }

    function test_strangerCannotMint() public {
        vm.prank(trader);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, trader));
        usdc.mint(trader, 1);
    }

    function testFuzz_mintAddsExactly(uint128 a, uint128 b) public {
        vm.startPrank(owner);
        usdc.mint(trader, a);
        usdc.mint(trader, b);
        vm.stopPrank();
        assertEq(usdc.balanceOf(trader), uint256(a) + uint256(b), "balance");
        assertEq(usdc.totalSupply(), uint256(a) + uint256(b), "supply");
    }
}
