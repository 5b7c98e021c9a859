"""RoI heads, mask heads and semantic heads of the cascade family (import the submodules directly)."""
