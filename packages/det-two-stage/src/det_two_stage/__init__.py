"""det-two-stage: region-proposal based detectors (RPN, Fast R-CNN, Faster R-CNN) for detcore.

Kept free of imports so that discovery (which only reads entry points) stays light; import
``det_two_stage.detectors.two_stage`` or ``det_two_stage.converters`` directly.
"""

__version__ = "0.1.0"
