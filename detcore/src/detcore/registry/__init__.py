"""Entry-point discovery and building of components (see `detcore.registry.kinds`)."""

from detcore.registry.discovery import refresh, scan_entry_points
from detcore.registry.kinds import KINDS
from detcore.registry.registry import (
    ComponentSpec,
    build,
    components,
    duplicates,
    get_component,
    resolve,
)

__all__ = [
    "KINDS", "ComponentSpec", "build", "components", "duplicates", "get_component", "refresh",
    "resolve", "scan_entry_points",
]
