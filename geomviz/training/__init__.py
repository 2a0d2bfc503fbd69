"""Training: the typed config, the trainer, evaluation, the probes' attachment and provenance.

Import the modules you need (``geomviz.training.train``); this package imports nothing
heavy on its own.
"""
