"""Entry-point discovery and building of components (see `detcore.registry.kinds`)."""

from detcore.registry.discovery import refresh, scan_entry_points
from detcore.registry.kinds import KIND_DESCRIPTIONS, NON_COMPONENT_GROUPS, kind_of_group
from detcore.registry.registry import (
    ComponentSpec,
    build,
    components,
    describe_kind,
    duplicates,
    get_component,
    kinds,
    resolve,
)

__all__ = [
    "KIND_DESCRIPTIONS", "NON_COMPONENT_GROUPS", "ComponentSpec", "build", "components",
    "describe_kind", "duplicates", "get_component", "kind_of_group", "kinds", "refresh", "resolve",
    "scan_entry_points",
]
