"""MLX's CPU matrix products through OpenBLAS: loaded before MLX, same results."""

import subprocess
import sys

import pytest

SCRIPT = """
import foldscreen.model, sys
import mlx.core as mx, numpy as np
a = np.random.default_rng(0).standard_normal((300, 200)).astype(np.float32)
b = np.random.default_rng(1).standard_normal((200, 100)).astype(np.float32)
product = np.array(mx.array(a) @ mx.array(b))
assert np.abs(product - a @ b).max() < 1e-3
maps = open("/proc/self/maps").read()
print("openblas" if "libscipy_openblas" in maps and "_fastblas" in maps else "reference")
"""


@pytest.mark.skipif(sys.platform != "linux", reason="the reference BLAS is a Linux wheel's")
def test_mlx_uses_openblas_when_foldscreen_model_is_imported_first():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "openblas"


def test_openblas_is_not_loaded_after_mlx():
    script = "import mlx.core\nfrom foldscreen.model.blas import use_openblas\nprint(use_openblas())"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.stdout.strip() == "False"
