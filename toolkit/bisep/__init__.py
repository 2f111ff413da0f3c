"""bisep: language-conditioned audio source separation with weak bi-modal supervision.

The package root stays light on purpose: ``import bisep.losses`` must work where only
torch is installed, and ``bisep plugins`` must start without torch. Public names that
need heavier imports are resolved on first access (PEP 562).
"""
__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl", "Separator"]


def __getattr__(name):
    if name == "hookimpl":
        from bisep.hookspecs import hookimpl

        return hookimpl
    if name == "Separator":
        from bisep.inference import Separator

        return Separator
    raise AttributeError(f"module 'bisep' has no attribute {name!r}")
