"""det-anchor-free: anchor-free dense detectors (FCOS) for detcore.

Kept free of imports so that discovery stays light; import ``det_anchor_free.heads``,
``det_anchor_free.detectors`` or ``det_anchor_free.converters`` directly.
"""

__version__ = "0.1.0"
