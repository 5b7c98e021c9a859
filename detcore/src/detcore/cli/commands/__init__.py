"""CLI subcommand modules; each exposes ``register(subparsers)`` and imports torch lazily."""
