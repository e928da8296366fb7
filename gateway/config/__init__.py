"""Configuration: the settings models (``settings``, one per ``[section]``) and their one
loader (``loader``: defaults < TOML file < ``OME_ZARR_GATEWAY__*`` environment < command line)."""

from gateway.config.errors import SettingsError
from gateway.config.loader import load_settings
from gateway.config.settings import Settings
from gateway.config.sizes import ByteSize, parse_size

__all__ = ["ByteSize", "Settings", "SettingsError", "load_settings", "parse_size"]
