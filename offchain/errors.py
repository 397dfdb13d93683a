"""The errors DPRE raises on purpose.

Every one derives from DpreError. Each domain keeps its own subclass next to its code:
RiskError (offchain/risk/errors.py), AttestationError (offchain/attest/errors.py),
MarketDataError (offchain/oracle/market_sources.py), OracleError (offchain/oracle/core.py),
KeeperError (offchain/keeper/errors.py), HttpError (offchain/ops/web.py).

The kinds below say what a failure means to whoever asked, whatever its domain. A domain error
a service answers with derives from one kind as well; the HTTP layer alone turns a kind into a
status (offchain/ops/web.py: status_of). The CLI prints any DpreError as one clear line,
never a stack trace.
"""


class DpreError(Exception):
    """The message says what is wrong; `hint`, when given, how to fix it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base}\nhint: {self.hint}" if self.hint else base


class UserError(DpreError):
    """Bad command-line input or environment (a flag, a file, a key, a node): the user fixes it."""


class InvalidInput(DpreError):
    """A malformed request: the message names the field."""


class NotFound(DpreError):
    """A request about something that does not exist (an account, a commitment)."""


class Conflict(DpreError):
    """A well-formed request that is impossible in the current state (not liquidatable, not
    expired yet, over a cap)."""


class Unavailable(DpreError):
    """A request that cannot be answered now (no trustworthy market data, the node unreachable);
    asking again later may succeed."""
