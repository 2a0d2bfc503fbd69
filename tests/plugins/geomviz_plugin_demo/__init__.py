"""A user's objective package, as a plugin author would write it: tests load it through
``geomviz_plugin_demo.losses:focal`` and through a ``geomviz.objectives`` entry point.
The other modules are the broken specs the loader must name in one line."""
