"""Configs of det-keypoint (found through the detcore.configs entry point)."""
