"""Layers the cascade family's heads are built of (SCNet's simplified residual blocks)."""
