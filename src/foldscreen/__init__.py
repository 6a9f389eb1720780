"""foldscreen: batch structure-prediction screens with OpenFold3."""

__version__ = "0.1.0"
