"""A plugin whose import fails: the loader must name this module and the first line."""

raise RuntimeError("demo plugin could not read its settings\nsecond line, not shown")
