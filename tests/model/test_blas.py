"""MLX's CPU matrix products through OpenBLAS, whichever was imported first: same results."""

import os
import subprocess
import sys

import pytest

PRODUCT = """
import mlx.core as mx, numpy as np
from foldscreen import _fastblas
a = np.random.default_rng(0).standard_normal((300, 200)).astype(np.float32)
b = np.random.default_rng(1).standard_normal((200, 100)).astype(np.float32)
before = _fastblas.calls()
product = np.array(mx.array(a) @ mx.array(b))
assert np.abs(product - a @ b).max() < 1e-3
print("openblas" if _fastblas.calls() > before else "reference")
"""

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the reference BLAS is a Linux wheel's")


def run(script: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, **env})


@pytest.mark.parametrize("first", ["import foldscreen.model", "import mlx.core; import foldscreen.model"],
                         ids=["foldscreen_first", "mlx_first"])
def test_mlx_products_go_to_openblas_whatever_the_import_order(first):
    result = run(f"{first}\n{PRODUCT}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "openblas"


def test_reference_blas_when_asked_for():
    script = "import foldscreen.model\nprint('_fastblas' in open('/proc/self/maps').read())"
    result = run(script, FOLDSCREEN_MLX_BLAS="reference")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
