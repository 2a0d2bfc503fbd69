"""Hook-based activation probes (feature norms, angle/radius, gradient split, entropy).

The probes arrive with the "Probes" issue; this package is declared now so the
layout and the installed packages are stable.
"""
