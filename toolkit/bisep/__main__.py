"""``python -m bisep``: the same entry point as the ``bisep`` console script.

Running ``bisep.cli.main`` itself as ``__main__`` would define a second ``CliError``
class, so user errors would surface as tracebacks; this module imports it instead.
"""
import sys

from bisep.cli.main import main

sys.exit(main())
