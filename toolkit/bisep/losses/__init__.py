"""Training objectives of bisep, importable with torch alone.

Plain functions (shapes checked, NaN refused, fp16/bf16 promoted) and small modules::

    from bisep.losses import consistency_reconstruction_loss, bimodal_contrastive_loss

Paper terms (``docs/paper.md#losses``):

==============================  ==========================================  ==============
function                        module (plugin name)                        paper
==============================  ==========================================  ==============
bimodal_contrastive_loss        BiModalContrastiveLoss (clap_contrastive)   L_CNT
consistency_reconstruction_loss ConsistencyReconstructionLoss               L_CRL
                                (consistency_reconstruction)
mix_separate_loss               MixSeparateLoss (mix_separate)              L_UNS
supervised_separation_loss      SupervisedSeparationLoss (supervised)       L_SUP
containment_loss                ContainmentLoss (containment)               (ours)
judged_level_loss               JudgedLevelLoss (judged_level)              (ours)
==============================  ==========================================  ==============

Waveform losses in Asteroid's ``pairwise_* / singlesrc_* / multisrc_*`` families, and
:class:`PITLoss` for permutation-invariant training.

The modules' ``forward`` arguments are named after the quantities a training step
produces, so a trainer can feed any composition of them from one dictionary:
``mom_mag (B,F,T)``, ``mixture_mags (B,N,F,T)``, ``mixture_masks (B,N,F,T)``,
``phrase_masks (B,N,K,F,T)``, ``phrase_weights (B,N,K)``, ``phrase_valid (B,N,K)``,
``phrase_audio_emb``/``phrase_text_emb (B,N,K,D)``, ``mixture_audio_emb (B,N,D)``,
``logit_scale``,
``source_masks``/``source_mags (B,S,F,T)``, ``source_valid (B,S)``,
``source_estimates``/``source_wavs (B,S,T)``.
"""
from bisep.losses.contrastive import (BiModalContrastiveLoss, bimodal_contrastive_loss,
                                      same_text_mask)
from bisep.losses.judged_level import JudgedLevelLoss, judged_level_loss, judged_shares
from bisep.losses.pit import PITLoss, best_permutation
from bisep.losses.reconstruction import (ConsistencyReconstructionLoss, ContainmentLoss,
                                         MixSeparateLoss, SupervisedSeparationLoss,
                                         consistency_reconstruction_loss, containment_loss,
                                         loudness_weight, mix_separate_loss,
                                         supervised_separation_loss, weighted_l1)
from bisep.losses.sdr import (NegSDRLoss, multisrc_neg_sdsdr, multisrc_neg_sisdr,
                              multisrc_neg_snr, neg_sdr, pairwise_neg_sdsdr,
                              pairwise_neg_sisdr, pairwise_neg_snr, singlesrc_neg_sdsdr,
                              singlesrc_neg_sisdr, singlesrc_neg_snr)

__all__ = [
    "BiModalContrastiveLoss", "bimodal_contrastive_loss", "same_text_mask",
    "ConsistencyReconstructionLoss", "consistency_reconstruction_loss",
    "ContainmentLoss", "containment_loss",
    "JudgedLevelLoss", "judged_level_loss", "judged_shares",
    "MixSeparateLoss", "mix_separate_loss",
    "SupervisedSeparationLoss", "supervised_separation_loss",
    "loudness_weight", "weighted_l1",
    "NegSDRLoss", "neg_sdr",
    "pairwise_neg_sisdr", "pairwise_neg_sdsdr", "pairwise_neg_snr",
    "singlesrc_neg_sisdr", "singlesrc_neg_sdsdr", "singlesrc_neg_snr",
    "multisrc_neg_sisdr", "multisrc_neg_sdsdr", "multisrc_neg_snr",
    "PITLoss", "best_permutation",
]
