"""detcore: the kernel of a plug-in object-detection toolbox for PyTorch.

Importing ``detcore`` is cheap (no torch); subpackages import torch as they need it.
"""

__version__ = "0.1.0"
