"""Configuration: the settings model and its one loader (TOML file, environment,
command line).
"""
