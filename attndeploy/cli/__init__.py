"""The `attndeploy` command line (exit 0: checks passed, 1: a check failed, 2: bad usage or input)."""
