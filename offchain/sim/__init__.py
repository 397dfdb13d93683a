"""Local simulation: running the services as real processes, and a trading desk that drives a
population of traders through them (used by the demo and the service tests)."""
