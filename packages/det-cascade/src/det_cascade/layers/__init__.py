"""Layers of the cascade family (import the submodules directly)."""
