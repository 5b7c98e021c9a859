"""pluggy plugins: hook specs and the manager that loads ``detcore.plugins`` entry points."""

from detcore.plugins.hookspecs import hookimpl, hookspec
from detcore.plugins.manager import PluginManager, PluginStatus, get_plugin_manager

__all__ = ["PluginManager", "PluginStatus", "get_plugin_manager", "hookimpl", "hookspec"]
