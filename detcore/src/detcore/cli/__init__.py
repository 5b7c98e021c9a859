"""The ``detcore`` command-line interface."""
