"""The I/O shell toward the chain: local nodes, compiled artifacts, deployment."""
