"""Errors of computing what the oracle signs."""

from offchain.errors import DpreError


class AttestationError(DpreError):
    """An attestation cannot be computed from these inputs (an instrument the registry does not
    list, an expired option without a settlement price, an account that is not liquidatable).
    Kindless like RiskError: the caller decides what it means for its request."""
