"""The package version, in one place (setup.cfg reads it without importing torch)."""

__version__ = "0.1.0"
