"""The gateway's stress suite: bounded runs against a real gateway process on loopback
that state their figures (see stress/README.md). ``python -m stress --short``."""
