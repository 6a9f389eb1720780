"""Fast matrix products for MLX on a Linux CPU, whichever of MLX and foldscreen came first.

MLX's Linux CPU wheel links a reference BLAS (a 1024^3 float32 product ran at 3.6 GFLOP/s on
this project's 2-core machine, against 64 with OpenBLAS). `use_openblas()` loads OpenBLAS from
the scipy-openblas32 wheel and foldscreen's `_fastblas` module, which defines `cblas_sgemm`,
into the global symbol scope, so that an MLX imported afterwards binds its products to
OpenBLAS. An MLX imported earlier has already bound them to its reference BLAS (Python loads
extensions with RTLD_NOW, and libmlx.so needs its own renamed copy of libblas, which nothing
can stand in for): then `_fastblas.rebind` rewrites that one binding in libmlx.so. Either way
`_fastblas.calls()` counts the products that reach OpenBLAS. It does nothing elsewhere (macOS
uses Accelerate; CUDA does not use the CPU BLAS).
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
    """Route MLX's CPU matrix products to OpenBLAS; True if they go there.

    FOLDSCREEN_MLX_BLAS=reference keeps MLX's own BLAS (for benchmarks and bug hunts).
    """
    global _loaded
    if _loaded:
        return True
    if sys.platform != "linux" or os.environ.get("FOLDSCREEN_MLX_BLAS") == "reference":
        return False
    shim = importlib.util.find_spec("foldscreen._fastblas")
    openblas = importlib.util.find_spec("scipy_openblas32")
    if shim is None or shim.origin is None or openblas is None or openblas.origin is None:
        log.warning("OpenBLAS shim not available: MLX uses its slow reference BLAS on this CPU")
        return False
    ctypes.CDLL(str(Path(openblas.origin).parent / "lib" / "libscipy_openblas.so"), mode=ctypes.RTLD_GLOBAL)
    ctypes.CDLL(shim.origin, mode=ctypes.RTLD_GLOBAL)
    _loaded = "mlx.core" not in sys.modules or _rebind()
    return _loaded


def _rebind() -> bool:
    """Point an already loaded MLX's cblas_sgemm at OpenBLAS; warn, naming why, if it cannot."""
    from foldscreen import _fastblas

    library = Path(sys.modules["mlx.core"].__file__ or "").parent / "lib" / "libmlx.so"
    if not hasattr(_fastblas, "rebind"):
        reason = "the compiled _fastblas predates rebinding (reinstall foldscreen to rebuild it)"
    elif _fastblas.rebind(str(library)):
        log.info("mlx was imported before foldscreen.model: its matrix products rebound to OpenBLAS")
        return True
    else:
        reason = f"no cblas_sgemm binding found in {library}"
    log.warning("mlx was imported before foldscreen.model and %s: MLX keeps its slow reference BLAS "
                "on this CPU; import foldscreen.model before mlx", reason)
    return False
