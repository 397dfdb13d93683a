"""The keeper / liquidator daemon: watches the chain, liquidates, deleverages, settles."""
