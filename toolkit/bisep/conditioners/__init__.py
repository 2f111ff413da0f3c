"""Query encoders (conditioners): frozen audio-text embedding models behind one interface.

- :mod:`bisep.conditioners.base`: the :class:`~bisep.conditioners.base.Conditioner` interface.
- :mod:`bisep.conditioners.laion_clap`: LAION-CLAP from the ``laion_clap`` package and a local
  checkpoint (the paper's CLAP).
- :mod:`bisep.conditioners.hf_clap`: a CLAP saved in the ``transformers`` format, from a local folder.
- :mod:`bisep.conditioners.query`: text/audio query blending and negative queries for any
  conditioner.

Nothing is imported here on purpose: the conditioners pull in torch, transformers and laion_clap,
and the plugin registry refers to them by import string so that ``bisep plugins`` stays fast.
"""
