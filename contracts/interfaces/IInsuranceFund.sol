// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IInsuranceFund
/// @notice The second line of the loss waterfall. Funded by liquidation fees and direct
///         deposits; pays the deficit of bankrupt accounts; its balance can never go negative.
/// @dev Amounts are WAD; the fund holds the clearinghouse's collateral token. Its shared errors
///      (`ZeroAmount`, `ZeroAddress`) are IClearinghouse's and `NotEngine` is
///      IClearinghouseEngineHooks': one selector per meaning across the protocol.
interface IInsuranceFund {
    /// @notice Thrown when a target above `MAX_TARGET` is set.
    error TargetOutOfBounds();

    event Deposited(address indexed from, uint256 amount, uint256 balance);
    event FeeReceived(address indexed account, uint256 amount, uint256 balance);
    event DeficitCovered(address indexed account, uint256 amount, uint256 balance);
    event TargetUpdated(uint256 target);

    /// @notice What the fund can pay out, in WAD.
    function fundBalance() external view returns (uint256);

    /// @notice The balance governance aims for (e.g. the oracle's worst-case shortfall estimate).
    function target() external view returns (uint256);

    /// @notice balance / target in WAD (1e18 = fully funded); type(uint256).max without a target.
    function health() external view returns (uint256);

    /// @notice Adds `tokenAmount` of collateral from the caller to the fund.
    function deposit(uint256 tokenAmount) external;

    /// @notice Books a fee the clearinghouse has already transferred here.
    /// @dev "Engine" here means the clearinghouse itself or any engine it has enabled
    ///      (`isEngine`), so governance swapping the engine through the timelock carries the fund.
    function recordFee(address account, uint256 amount) external;

    /// @notice Releases up to `amount` (whole token units, rounded down) for `account`'s deficit:
    ///         approves the clearinghouse to pull it. Engine or clearinghouse only.
    /// @return tokenAmount Token units approved; the WAD balance falls by exactly their value.
    function release(address account, uint256 amount) external returns (uint256 tokenAmount);
}
