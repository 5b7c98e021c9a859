"""Checkpoint converters from other toolboxes (entry-point group ``detcore.converters``)."""
