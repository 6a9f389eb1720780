"""OpenFold3 in MLX: one module per part of the network, named after OpenFold3's modules.

Attribute names follow OpenFold3's PyTorch modules, so a checkpoint's keys map one to one onto
these modules' parameters (see `weights`). Importing this package first routes MLX's CPU matrix
products to OpenBLAS on Linux (see `blas`).
"""

from .blas import use_openblas

use_openblas()
