"""match_costs of det-transformer (registered through entry points, never imported here)."""
