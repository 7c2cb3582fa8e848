"""cellwarden — an open battery-management platform with a simulated pack by default."""

__version__ = "0.1.0"
