"""Query-conditioned mask separators; see :mod:`bisep.separators.base` for the interface."""
