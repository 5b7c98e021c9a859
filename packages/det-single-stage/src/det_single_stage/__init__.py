"""det-single-stage: anchor-based single-stage detectors (RetinaNet) for detcore.

Kept free of imports so that discovery stays light; import ``det_single_stage.heads``,
``det_single_stage.detectors`` or ``det_single_stage.converters`` directly.
"""

__version__ = "0.1.0"
