"""Fast matrix products for MLX on a Linux CPU.

MLX's Linux CPU wheel links a reference BLAS (a 1024^3 float32 product ran at 3.6 GFLOP/s on
this project's 2-core machine, against 64 with OpenBLAS). `use_openblas()` loads OpenBLAS from
the scipy-openblas32 wheel and foldscreen's `_fastblas` module, which defines `cblas_sgemm`,
into the global symbol scope before MLX is imported, so MLX's products resolve to OpenBLAS.
It does nothing elsewhere (macOS uses Accelerate; CUDA does not use the CPU BLAS), and does
nothing when MLX was already imported, since its symbols may already be bound.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)
_loaded = False


def use_openblas() -> bool:
    """Route MLX's CPU matrix products to OpenBLAS; True if it was done.

    FOLDSCREEN_MLX_BLAS=reference keeps MLX's own BLAS (for benchmarks and bug hunts).
    """
    global _loaded
    if _loaded:
        return True
    if sys.platform != "linux" or "mlx.core" in sys.modules:
        return False
    if os.environ.get("FOLDSCREEN_MLX_BLAS") == "reference":
        return False
    shim = importlib.util.find_spec("foldscreen._fastblas")
    openblas = importlib.util.find_spec("scipy_openblas32")
    if shim is None or shim.origin is None or openblas is None or openblas.origin is None:
        log.warning("OpenBLAS shim not available: MLX uses its slow reference BLAS on this CPU")
        return False
    library = Path(openblas.origin).parent / "lib" / "libscipy_openblas.so"
    ctypes.CDLL(str(library), mode=ctypes.RTLD_GLOBAL)
    ctypes.CDLL(shim.origin, mode=ctypes.RTLD_GLOBAL)
    _loaded = True
    return True
