"""necks of det-keypoint (registered through entry points, never imported here)."""
