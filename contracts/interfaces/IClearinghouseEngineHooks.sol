// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IClearinghouse, MarginAttestation} from "./IClearinghouse.sol";

/// @title IClearinghouseEngineHooks
/// @notice The clearinghouse as its engines see it: the public interface plus the hooks only an
///         enabled engine (`isEngine`: the liquidation engine, a snapshot-commitment registry) may
///         call. The hooks verify attestations for an engine and move positions, cash and
///         collateral as the loss waterfall decides; they never judge whether a move is due.
/// @dev Engines change only through the timelock once the clearinghouse is sealed, so whatever
///      an engine can do with these hooks is part of the protocol's trust assumptions.
interface IClearinghouseEngineHooks is IClearinghouse {
    /// @notice Thrown when a hook is called by an address that is not an enabled engine (also by
    ///         the insurance fund, whose payouts only the clearinghouse and its engines may ask).
    error NotEngine();
    /// @notice Thrown when an engine asks for the insurance fund's collateral before a fund is set.
    error NotInsuranceFund();

    /// @notice Verifies a margin attestation of `account`'s current portfolio state (signed, or
    ///         proven against a posted commitment) and returns its equity.
    /// @dev Same checks as a withdrawal's: account, state hash, params version, freshness.
    /// @return equity The account's cash plus the attested portfolio value (WAD).
    function verifyMarginAttestation(address account, MarginAttestation calldata att, bytes calldata sigs)
        external
        returns (int256 equity);

    /// @notice Verifies the oracle's threshold signatures over an engine-defined EIP-712 struct
    ///         hash (under the clearinghouse's domain) and the freshness of its snapshot.
    /// @dev A fresh snapshot raises `latestSnapshotTime`, as any accepted attestation does.
    function verifyOracleSignatures(bytes32 structHash, uint64 snapshotTime, uint64 deadline, bytes calldata sigs)
        external;

    /// @notice Moves `amount` contracts of `instrumentId` (signed, from `from`'s side) to `to`.
    /// @dev Receipts are exempt from `maxPositions` (up to the storage bound). Reverts
    ///      `InstrumentExpired` for an expired option: those only settle.
    function engineMovePosition(address from, address to, uint256 instrumentId, int256 amount) external;

    /// @notice Moves a pro-rata slice of every position of `from` to `to`.
    /// @param fraction WAD share; each slice is rounded away from zero, and at `fraction >= 1e18`
    ///        the whole position moves.
    /// @dev Emits one `PortfolioSliceTransferred` for the whole slice.
    function engineTransferSlice(address from, address to, uint256 fraction) external;

    /// @notice Moves `amount` of cash (signed) from `from` to `to`; may leave `from` negative.
    function engineMoveCash(address from, address to, int256 amount) external;

    /// @notice Debits up to `amount` (WAD) from `account` and sends it to `to` in whole token units.
    /// @return debited The WAD value of the tokens sent: `amount` rounded down to a token unit.
    function enginePayOut(address account, address to, uint256 amount) external returns (uint256 debited);

    /// @notice Pulls `tokenAmount` that the insurance fund approved (`IInsuranceFund.release`) and
    ///         credits exactly what arrived to `account`. Never pulls from any other wallet.
    /// @return credited The WAD value credited.
    function enginePayIn(address account, uint256 tokenAmount) external returns (uint256 credited);

    /// @notice Closes `account`'s position in an expired instrument and books its cash settlement
    ///         `payout` (negative for a payer).
    function engineSettle(address account, uint256 instrumentId, int256 payout) external;

    /// @notice Books settlement cash that is not a position's payout: a payer's shortfall,
    ///         recovered later from the winners' payouts (tracked in `netSettlementPayouts`).
    function engineCreditSettlement(address account, int256 amount) external;

    /// @notice Flags (`on`) or clears an account's unresolved bad debt; withdrawals are gated
    ///         while any account is flagged.
    /// @return changed Whether the flag changed.
    function engineSetFlag(address account, bool on) external returns (bool changed);
}
