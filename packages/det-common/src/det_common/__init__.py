"""det-common: building blocks shared by every detcore algorithm family.

Kept free of imports so that discovery (which only reads entry points) stays light;
import the submodules (``det_common.bbox``, ``det_common.layers``, ...) directly.
"""

__version__ = "0.1.0"
