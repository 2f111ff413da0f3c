"""Named presets of a separator's keywords, overridden by the keywords given."""
from __future__ import annotations


def resolve_preset(presets: dict[str, dict], preset: str | None, default: str,
                   given: dict) -> dict:
    """Preset values overridden by the explicitly given (non-``None``) keywords.

    Args:
        presets: preset name -> keyword values.
        preset: the requested preset, ``None`` for ``default``.
        default: the preset used when ``preset`` is ``None``.
        given: the constructor's keywords, ``None`` where not given.

    Returns:
        Every keyword of the preset, resolved.

    Raises:
        ValueError: for an unknown preset name.
    """
    name = default if preset is None else preset
    if name not in presets:
        raise ValueError(f"unknown preset '{name}'; available: {', '.join(presets)}")
    return {key: value if given.get(key) is None else given[key]
            for key, value in presets[name].items()}
