"""det-cascade: multi-stage (cascade) detectors for detcore, starting with Cascade R-CNN.

Kept free of imports so that discovery (which only reads entry points) stays light; import
``det_cascade.heads.cascade_roi_head`` or ``det_cascade.detectors.cascade`` directly.
"""

__version__ = "0.1.0"
