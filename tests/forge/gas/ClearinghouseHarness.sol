// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Clearinghouse} from "../../../contracts/core/Clearinghouse.sol";
import {MarginAttestation, RiskConfig} from "../../../contracts/interfaces/IClearinghouse.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @notice Exposes attestation verification alone, to measure its gas by signer count.
contract ClearinghouseHarness is Clearinghouse {
    constructor(IERC20 token, address owner_, RiskConfig memory config, address[] memory signers_, uint8 threshold)
        Clearinghouse(token, owner_, owner_, 1 days, config, bytes32(0), signers_, threshold)
    {}

    function verifyOnly(MarginAttestation calldata att, bytes calldata sigs) external {
        _verifyMargin(att, sigs, att.account, _accounts[att.account].stateHash);
    }
}
