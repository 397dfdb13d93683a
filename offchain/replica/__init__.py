"""The chain-state replica: every account, position, cash balance, bankruptcy flag and fund
figure of a deployment, rebuilt from the contracts' events and kept on the chain as it is through
reorganisations. The oracle's signers and the keeper each run one.

- `state.py` — ChainState: applies events, follows the chain (undo window, reorgs, diverged
  accounts), serialises itself; `open_replica` resumes or starts one for a deployment.
- `events.py` — the event handlers, one per contract event, in a table by event name.
- `store.py` — where a replica is kept between runs (SQLite, PostgreSQL, a JSON file).
- `interface.py` — Replica: what the oracle and the keeper read of it.
- `check.py` — compares a signer's replica with the contracts.
"""

from offchain.replica.interface import Replica
from offchain.replica.state import RISK_CONFIG_FIELDS, AccountState, ChainState, open_replica
from offchain.replica.store import StateStore, open_store

__all__ = ["RISK_CONFIG_FIELDS", "AccountState", "ChainState", "Replica", "StateStore", "open_replica", "open_store"]
