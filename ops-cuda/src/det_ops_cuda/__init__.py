"""det-ops-cuda: compiled kernels for detcore.ops.

Kept import-light on purpose (no torch): the compiled extension ``det_ops_cuda._C`` is
loaded only when detcore builds the backend through ``det_ops_cuda.backend.make_backend``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
