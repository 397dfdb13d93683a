"""DPRE off-chain side: the risk engine, attestation encoding, the oracle and keeper services."""

__version__ = "0.1.0"
