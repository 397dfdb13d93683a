"""What the oracle and the keeper read of the chain: the Replica protocol.

Both run a replica of the deployment (ChainState: they drive its catch-up and its saves) and
compute from what it says through these members only, so the two read the same facts the same
way. Every figure is as the contracts hold it after block `block` (the confirmed block the
replica stands on): exact integers (WAD cash and sizes, the fund in WAD), except settlement
prices, which the risk engine takes as floats. Accounts are read only; nothing here changes the
replica.

Reads that must see the chain's head rather than the confirmed block (the keeper's fund balance
before it sends, an account's flag right now) go to the contracts, and decide with the same
integer rules (offchain/attest/liquidation.py: fund_covers, flag_clears).
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any, Protocol

from offchain.attest.liquidation import LiquidationConfig
from offchain.replica.state import AccountState
from offchain.risk.instruments import Instrument


class Replica(Protocol):
    @property
    def block(self) -> int:
        """The last block applied."""
        ...

    @property
    def version(self) -> int:
        """Changes whenever the state does (applied or undone): a cache key within one process."""
        ...

    # ------------------------------------------------------------------ accounts

    @property
    def accounts(self) -> Mapping[str, AccountState]:
        """Every account the events named, by address: cash, state hash, open positions in
        PositionBook's order, net deposits."""
        ...

    def account(self, address: str) -> AccountState | None:
        """One account (None: never seen)."""
        ...

    @property
    def flagged(self) -> Set[str]:
        """Accounts flagged bankrupt beyond the fund (withdrawals are gated while any is)."""
        ...

    @property
    def diverged(self) -> Set[str]:
        """Accounts whose replayed state hash differs from the chain's: nothing is signed about
        them until they are read back from the contract."""
        ...

    # ------------------------------------------------------------------ instruments and settlement

    @property
    def instruments(self) -> Mapping[int, Instrument]:
        """Every listed instrument, by on-chain id."""
        ...

    @property
    def settlement_prices(self) -> Mapping[tuple[str, int], float]:
        """Posted settlement prices, by (underlying, expiry)."""
        ...

    @property
    def settlement_shortfall(self) -> Mapping[int, int]:
        """What an expired option's payers could not pay, by instrument id (WAD)."""
        ...

    def settlement_cut(self, instrument_id: int, size: int, payout: int) -> int:
        """What the engine withholds from a long's payout of an expired option (WAD)."""
        ...

    # ------------------------------------------------------------------ risk configuration and fund

    @property
    def liquidation_config(self) -> LiquidationConfig | None:
        """The liquidation terms in force (None until the first RiskConfigUpdated)."""
        ...

    @property
    def snapshot_tolerance(self) -> int | None:
        """RiskConfig.snapshotTolerance in force, seconds (None until replayed)."""
        ...

    @property
    def fund_balance(self) -> int:
        """InsuranceFund.fundBalance (WAD)."""
        ...

    def fund_health(self) -> int:
        """InsuranceFund.health() (WAD)."""
        ...

    def fund_covers(self, deficit: int) -> bool:
        """Whether the fund covers a deficit of `deficit` WAD, by the contract's rule."""
        ...

    # ------------------------------------------------------------------ following the chain

    @property
    def reorgs(self) -> int:
        """Reorganisations the replica has rolled back."""
        ...

    @property
    def last_reorg(self) -> dict[str, Any] | None:
        """The latest of them: where it was detected, the common ancestor, blocks undone."""
        ...

    def digest(self) -> str:
        """One hash of every account, the fund, flags and shortfalls: equal replicas at the same
        block have equal digests."""
        ...
