"""The backbone registry: ``model.backbone`` (and ``model.tower_backbones``) -> how a tower turns the
embedded features of its embedding group into a logit. One explicit line per backbone; the
implementation is imported on first use, so config validation stays free of TensorFlow.

    backbone   per     logit of a tower
    mlp        tower   MLP over the concatenated field vectors (``model.tower``; the default, today's towers)
    mf         tower   ⟨p_u, q_i⟩ + b_u + b_i + b over the user and item fields (``model.mf``)
    dcn        tower   DCN-v2: tfrs Cross layers stacked on / parallel to the MLP (``model.dcn``, ``model.tower``)
    dlrm       tower   tfrs DotInteraction of the field vectors + bottom/top MLPs (``model.dlrm``, ``model.tower``)
    mmoe       group   shared experts, a softmax gate and a head per tower (``model.mmoe``, ``model.tower``)
    ple        group   shared + per-tower experts, a gate per tower over its own + shared (``model.ple``)

The interface a backbone implements (a ``tf_keras.layers.Layer``; see :class:`trainer.model.mf.MfBackbone`
and :class:`trainer.model.layers.MlpBackbone`)::

    cls(context: BackboneContext)                     built once per tower (per="tower")
                                                      or once per embedding group (per="group")
    cls.field_dims(context) -> {field: dim}           class method: sizes it needs for some fields of
                                                      the group's tables (mf: its embedding_dim for the
                                                      user and item fields); {} keeps model.embedding_dim
    layer(fields, features, training) -> logits
        fields    {field name: [batch, d]} the group's per-field vectors in declaration order
                  (numeric features as [batch, 1]); ``features`` the transformed batch (ids, for biases)
        returns   per="tower": [batch] logits of the tower
                  per="group": {tower name: [batch]} for every tower of ``context.towers``
    layer.losses  regularisers (add_loss) join every update's loss

``BackboneContext`` carries the tower (or group) name, the towers it serves, the ``model`` section,
the feature declarations, the table sizes, the ratings' (user, item) columns and the other towers that
read the same embedding group. A backbone that
feature-crosses (DCN, DLRM's dot interaction) is per="tower" and reads ``fields``; one with experts
shared by the towers of a group (MMoE, PLE) is per="group" and returns one logit per tower: add its
line to ``BACKBONES`` and, if it has knobs, a small section to :class:`trainer.estimators.params.Towers`.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Literal, Optional

from transforms.errors import did_you_mean


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    name: str
    implementation: str                 # "module:Class"
    per: Literal["tower", "group"] = "tower"

    def load(self) -> type:
        module, _, cls = self.implementation.partition(":")
        return getattr(importlib.import_module(module), cls)


@dataclasses.dataclass(frozen=True)
class BackboneContext:
    name: str                           # the tower (per="tower") or the embedding group (per="group")
    towers: tuple[str, ...]             # the towers it computes
    model: Any                          # trainer.config.ModelConfig
    features: tuple                     # transforms.schema.FeatureConfig of every feature
    cardinalities: dict[str, int]       # table size of every embedded feature
    pair_features: Optional[tuple[str, str]] = None   # the ratings' (user, item) columns
    shares_with: tuple[str, ...] = ()   # other towers reading the same embedding group


BACKBONES: dict[str, BackboneSpec] = {s.name: s for s in (
    BackboneSpec("mlp", "trainer.model.layers:MlpBackbone"),
    BackboneSpec("mf", "trainer.model.mf:MfBackbone"),
    BackboneSpec("dcn", "trainer.model.dcn:DcnBackbone"),
    BackboneSpec("dlrm", "trainer.model.dlrm:DlrmBackbone"),
    BackboneSpec("mmoe", "trainer.model.experts:MmoeBackbone", per="group"),
    BackboneSpec("ple", "trainer.model.experts:PleBackbone", per="group"),
)}


def get_backbone(name: str) -> BackboneSpec:
    if name not in BACKBONES:
        hint = did_you_mean(name, BACKBONES)
        raise ValueError(f"unknown backbone {name!r}{hint}; known: {', '.join(BACKBONES)}")
    return BACKBONES[name]
