"""Checkpoint converters from other toolboxes into detcore's (MMDetection) parameter layout."""
