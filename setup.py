"""Builds the one C file of foldscreen (see src/foldscreen/_fastblas.c); metadata is in pyproject."""

import sys

from setuptools import Extension, setup

extensions = []
if sys.platform == "linux":
    extensions.append(Extension("foldscreen._fastblas", ["src/foldscreen/_fastblas.c"], optional=True))

setup(ext_modules=extensions)
