"""A template detcore plugin. Keep this file light: detcore lists components without importing it."""

__version__ = "0.1.0"
