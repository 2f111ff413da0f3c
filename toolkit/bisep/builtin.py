"""The built-in plugin: bisep's own components, registered like any third party's.

It is listed under the ``bisep`` entry-point group in ``setup.cfg``. Targets are import
strings so that loading this module imports nothing heavy.
"""
from bisep.hookspecs import hookimpl

SEPARATORS = {
    "cond_unet": "bisep.separators.cond_unet:CondUNet",
    "film_masknet": "bisep.separators.film_masknet:FiLMMaskNet",
}

CONDITIONERS = {
    "laion_clap": "bisep.conditioners.laion_clap:LaionClapConditioner",
    "hf_clap": "bisep.conditioners.hf_clap:HfClapConditioner",
    "mini_clap": "bisep.conditioners.mini_clap:MiniClapConditioner",
}

LOSSES = {
    "clap_contrastive": "bisep.losses.contrastive:BiModalContrastiveLoss",
    "consistency_reconstruction": "bisep.losses.reconstruction:ConsistencyReconstructionLoss",
    "containment": "bisep.losses.reconstruction:ContainmentLoss",
    "judged_level": "bisep.losses.judged_level:JudgedLevelLoss",
    "mix_separate": "bisep.losses.reconstruction:MixSeparateLoss",
    "supervised": "bisep.losses.reconstruction:SupervisedSeparationLoss",
    "neg_sdr": "bisep.losses.sdr:NegSDRLoss",
}

DATASETS = {
    "synth_music": "bisep.data.synth_music:SynthMusic",
    "music": "bisep.data.music:Music",
    "vggsound": "bisep.data.vggsound:VGGSound",
    "audiocaps": "bisep.data.audiocaps:AudioCaps",
}


@hookimpl
def bisep_register_separators():
    return dict(SEPARATORS)


@hookimpl
def bisep_register_conditioners():
    return dict(CONDITIONERS)


@hookimpl
def bisep_register_losses():
    return dict(LOSSES)


@hookimpl
def bisep_register_datasets():
    return dict(DATASETS)
