"""EASQ (seed 001): align a ranking model with sparse questionnaire satisfaction.

The core: ``model`` (LoRA backbone + two ReLU-routed mixtures of experts, eqs. 6–14), ``losses``
(eqs. 11, 15–17), ``layers`` (``ReluRouter``, ``MixtureOfExperts``, ``LoraProjection``), ``pairs`` (B+ and
D+ formation). The estimator (``model.name: easq``, registered in ``trainer.estimators.registry``):
``estimator`` (the protocol), ``ranker`` (``FeatureEmbedding`` -> ``Easq``, the served model), ``stream``
(a split in time order, batches of whole requests), ``fit`` (offline epochs and the online Algorithm 1).
"""
from trainer.estimators.easq.layers import LoraProjection, MixtureOfExperts, ReluRouter
from trainer.estimators.easq.losses import (EasqLossConfig, bpr_loss, dpo_loss, easq_loss, pairwise_logistic,
                                            satisfaction_loss)
from trainer.estimators.easq.model import SATISFACTION, SCORE, Easq, EasqConfig
from trainer.estimators.easq.pairs import (ANSWER_GRADES, PairedBatch, QuestionnaireBuffer, answer_grades,
                                           behaviour_grades, request_pairs, within_group_pairs,
                                           within_group_pairs_tf)

__all__ = ["ANSWER_GRADES", "Easq", "EasqConfig", "EasqLossConfig", "LoraProjection", "MixtureOfExperts",
           "PairedBatch", "QuestionnaireBuffer", "ReluRouter", "SATISFACTION", "SCORE", "answer_grades",
           "behaviour_grades", "bpr_loss", "dpo_loss", "easq_loss", "pairwise_logistic", "request_pairs",
           "satisfaction_loss", "within_group_pairs", "within_group_pairs_tf"]
