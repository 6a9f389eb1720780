"""OpenFold3 in MLX: one module per part of the network, named after OpenFold3's modules.

Attribute names follow OpenFold3's PyTorch modules, so a checkpoint's keys map one to one onto
these modules' parameters (see `weights`). Importing this package first routes MLX's CPU matrix
products to OpenBLAS on Linux (see `blas`), and turns off the CUDA graphs of MLX's CUDA
backend (`MLX_USE_CUDA_GRAPHS=0`, unless set): with them a denoising step cost 21 ms, without
them 9-15 ms on an H200 (benchmarks/RESULTS.md). Other backends do not read the variable.
"""

import os

os.environ.setdefault("MLX_USE_CUDA_GRAPHS", "0")  # read when MLX first uses the GPU

from .blas import use_openblas  # noqa: E402  (after the variable, before MLX is imported)

use_openblas()
