"""Operations plumbing shared by the services: structured logs, metrics, a small HTTP server."""
