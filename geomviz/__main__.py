"""``python -m geomviz`` is the ``geomviz`` command."""

from .cli import main

raise SystemExit(main())
