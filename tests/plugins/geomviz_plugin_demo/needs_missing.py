"""A plugin importing a dependency that is not installed (not the same as a missing module)."""

import geomviz_demo_dependency_that_is_not_installed  # noqa: F401
