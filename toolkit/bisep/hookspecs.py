"""Hook specifications: how a plugin contributes components to bisep.

A plugin is a module (or object) with functions named after these hooks and marked
with :data:`hookimpl`. It is found through the ``bisep`` entry-point group::

    # setup.cfg of a third-party package
    [options.entry_points]
    bisep =
        my_plugin = my_package.bisep_plugin

Each ``bisep_register_*`` hook returns a mapping ``{name: factory}``. A factory is
either a callable or an import string ``"package.module:attribute"``; import strings
are resolved only when the name is used, so a plugin module must stay cheap to import
(every entry point is imported when bisep starts: no torch, no model weights at module
level). The registered name is what a YAML config writes (``separator: my_name``),
and the factory is called with the matching ``*_conf`` mapping as keyword arguments.
"""
import pluggy

PROJECT_NAME = "bisep"
ENTRY_POINT_GROUP = "bisep"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def bisep_register_separators():
    """Separators: ``factory(**separator_conf)`` returns a ``torch.nn.Module``.

    The module follows :class:`bisep.separators.base.BaseSeparator` (mixture STFT in,
    one mask per query out) and implements ``get_model_args()`` so that checkpoints can
    rebuild it with :func:`bisep.checkpoint.from_pretrained`.
    """


@hookspec
def bisep_register_conditioners():
    """Conditioners (query encoders): ``factory(**conditioner_conf)`` returns an object
    following :class:`bisep.conditioners.base.Conditioner` (text and/or audio queries to
    embeddings)."""


@hookspec
def bisep_register_losses():
    """Loss terms: ``factory(**conf)`` returns a ``torch.nn.Module`` whose ``forward``
    arguments are named after the training-step quantities it needs (see
    :mod:`bisep.losses`). Configs compose them as ``criterions: [{name, conf, weight}]``."""


@hookspec
def bisep_register_datasets():
    """Dataset preparers for recipe stage 1: ``factory(**conf)`` returns an object with a
    method ``prepare(out_dir)`` that writes the dataset's manifests under ``out_dir``
    (:class:`bisep.data.preparer.DatasetPreparer`)."""


KINDS = {
    "separator": "bisep_register_separators",
    "conditioner": "bisep_register_conditioners",
    "loss": "bisep_register_losses",
    "dataset": "bisep_register_datasets",
}
"""Component kind -> the hook that registers it."""
