"""Attach geomviz to training it did not write: recorders, framework callbacks and patches.

Each framework module imports its framework lazily and raises one clear ImportError naming
the ``pip install`` extra when it is missing, so ``import geomviz`` never needs them.
"""

from .recorder import Recorder

__all__ = ["Recorder"]
