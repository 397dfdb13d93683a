"""The risk engine's error."""

from offchain.errors import DpreError


class RiskError(DpreError):
    """The engine cannot value what it was given: a parameter out of bounds, inconsistent market
    data, an unknown or expired instrument, a malformed book or input file. The message names the
    input and why.

    It has no kind (offchain/errors.py) on purpose: bad engine input is the user's input in the
    CLI but the oracle's own data in a service, so each caller says what it means."""
