"""OpenFold3 in MLX: one module per part of the network, named after OpenFold3's modules.

Attribute names follow OpenFold3's PyTorch modules, so a checkpoint's keys map one to one onto
these modules' parameters (see `weights`).
"""
