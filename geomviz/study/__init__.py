"""Reading finished runs into results: per-run records, the ground-truth test, the figure set,
its export, the multi-seed study and its report."""
