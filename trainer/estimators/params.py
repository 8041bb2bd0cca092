"""The estimators' parameter groups: each a small pydantic model whose keys sit under ``model:`` in YAML.

An estimator declares the groups it reads (its ``EstimatorSpec.params`` in
:mod:`trainer.estimators.registry`); :class:`trainer.config.ModelConfig` is every group composed, and a
key of a group the chosen estimator does not read must keep its default, or loading the config fails
naming the key and the estimators that read it. The YAML keys are the flat ones users already write
(``model.undersample_rate``, ``model.bmse.phi``, ``model.c_ips.n_clusters``, ...).

No TensorFlow here: loading a config imports this module and the registry, nothing heavier.
"""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator

from transforms.schema import Section


class TowerConfig(Section):
    units: list[int] = [64, 32]
    activation: str = "relu"
    dropout: float = Field(0.0, ge=0, lt=1)
    batch_norm: bool = False


class IpwConfig(Section):
    """How inverse-propensity weights 1/p̂ are formed; shared by every propensity-weighted estimator.

    Applied in this order: detach, floor τ (absolute ``tau`` or relative ``tau_percent``, seed 003
    §5.3), percentile clipping (seed 000 §4), then the upper bound ``max_weight``.
    """

    tau: Optional[float] = Field(None, gt=0, lt=1, description="absolute floor on p̂ (weights ≤ 1/tau)")
    tau_percent: Optional[float] = Field(
        None, ge=0, le=1, description="floor as a fraction of the batch's propensity range: "
        "tau = p_min + tau_percent (p_mean - p_min); 0.9 means τ% = 90 %")
    clip_percentiles: Optional[tuple[float, float]] = Field(
        None, description="clip weights to [1/p̂_hi, 1/p̂_lo] of the batch's predicted propensities, e.g. [25, 75]")
    max_weight: Optional[float] = Field(None, ge=1, description="upper bound on any weight")
    detach_propensity: bool = Field(
        True, description="stop-gradient on p̂ inside the weighted loss: the CVR loss then never moves the "
        "CTR tower (it is trained by its own loss only)")

    @model_validator(mode="after")
    def _check(self):
        if self.tau is not None and self.tau_percent is not None:
            raise ValueError("give either tau (absolute floor) or tau_percent (relative floor), not both")
        if self.clip_percentiles is not None:
            lo, hi = self.clip_percentiles
            if not 0 <= lo < hi <= 100:
                raise ValueError(f"clip_percentiles must be [low, high] with 0 <= low < high <= 100, got {[lo, hi]}")
        return self


class BmseConfig(Section):
    """Balancing regulariser BMSE(φ, p̂) of IPS-V2 / DR-V2 (seed 002 §3.3, §4).

    φ, read from the shared representation: ``"1"`` the constant 1; ``"K"`` user ⊙ item embedding;
    ``"2K"`` [user embedding : item embedding]; ``"R"`` the predicted CVR r̂. The user and item
    embeddings are those of ``user_feature`` / ``item_feature`` in the shared embedding Φ.
    """

    phi: Literal["1", "K", "2K", "R"] = "1"
    weight: float = Field(0.005, ge=0, description="λ in L = L_IPS/DR + λ·BMSE (default: the best λ of seed "
                          "002's Table 6, Yahoo! R3; it searches 0.001 ... 1)")
    user_feature: str = "user_id"
    item_feature: str = "item_id"

    @field_validator("phi", mode="before")
    @classmethod
    def _phi_as_text(cls, value):
        return str(value) if isinstance(value, int) else value


class SurveyConfig(Section):
    """survey_ipw / survey_standalone (seed 000 §4): the satisfaction head and the response-rate head.

    o (``labels.selection``) is ``responded``, r (``labels.outcome``) the ``rating`` (any value where
    not responded: it is never read there). Weights 1/p̂ are formed by ``model.ipw``
    (e.g. ``clip_percentiles: [25, 75]``, the paper's choice).
    """

    satisfaction_task: Literal["regression", "classification"] = Field(
        "regression", description="'regression': predict the rating in [rating_min, rating_max]; "
        "'classification': predict P(rating > satisfied_threshold)")
    satisfied_threshold: float = Field(3.0, description="classification: satisfied = rating > threshold")
    rating_range: tuple[float, float] = Field(
        (1.0, 5.0), description="regression: the range of the predicted rating; keep equal to labels.rating_range")
    response_negative_keep: Optional[float] = Field(
        None, gt=0, le=1, description="w: train the response head on every response and this kept fraction of "
        "non-responses (rho/(1-rho) gives 1:1 at response rate rho), then calibrate p = p_s w / (p_s w + 1 - p_s); "
        "null trains on every impression")

    @model_validator(mode="after")
    def _check_range(self):
        if self.rating_range[1] <= self.rating_range[0]:
            raise ValueError(f"survey.rating_range {self.rating_range} is empty")
        return self


class CIpsConfig(Section):
    """c_ips (seed 004, Algorithm 2) and its baselines on (user, item, rating) data; a rating above
    ``labels.rating_threshold`` is a positive."""

    feedback: Literal["explicit", "implicit"] = Field(
        "explicit", description="explicit: eq. 9 over the rated pairs, label = rating > threshold; implicit "
        "(seed 004's protocol): the clicks (rated above the threshold) are the positives and every other pair "
        "is unlabeled; the recommender is trained over every pair with Rel-MF's loss, θ = eq. 8's cluster "
        "propensity (:mod:`trainer.estimators.rel_mf`)")
    propensity: Literal["cluster", "user", "none"] = Field(
        "cluster", description="'cluster': C-IPS eq. 8 on DEC clusters; 'user': user-level IPS (a logistic "
        "observation model per user-item pair); 'none': plain MF")
    n_clusters: int = Field(6, ge=1, description="K, the number of user clusters")
    rounds: int = Field(3, ge=1, description="M, alternating rounds of Algorithm 2")
    cluster_epochs: int = Field(3, ge=1, description="T, DEC epochs per round (Algorithm 1)")
    rec_epochs: int = Field(4, ge=1, description="recommender epochs per round (eq. 9)")
    hidden_units: list[int] = Field([64], description="phi: MLP on the user's 0/1 interaction vector -> h_u")
    batch_size: int = Field(512, gt=0)
    learning_rate: float = Field(0.005, gt=0)
    l2: float = Field(1e-5, ge=0, description="L2 penalty on the item embeddings and phi's kernels")


class MfConfig(Section):
    """The ``mf`` backbone (:mod:`trainer.model.mf`): logit = ⟨p_u, q_i⟩ + b_u + b_i + b
    (``head: gmf``: w_t·(p_u ⊙ q_i) + b_u + b_i + b).

    p_u, q_i are the vectors of ``user_feature`` / ``item_feature`` in the tower's embedding group,
    sized ``embedding_dim`` (its own size, not ``model.embedding_dim``); b_u, b_i, b belong to the tower.
    The L2 penalty ``weight_decay``·mean_batch(‖p_u‖² + ‖q_i‖²) is added to every update's loss.
    """

    embedding_dim: int = Field(64, gt=0, description="size of p_u and q_i")
    weight_decay: float = Field(1e-4, ge=0, description="L2 on the batch's p_u and q_i (mean over the batch)")
    user_feature: Optional[str] = Field(None, description="the user feature; null: the ratings' user column")
    item_feature: Optional[str] = Field(None, description="the item feature; null: the ratings' item column")
    biases: bool = Field(True, description="add b_u + b_i + b")
    head: Literal["auto", "dot", "gmf"] = Field(
        "auto", description="dot: ⟨p_u, q_i⟩; gmf: w_t·(p_u ⊙ q_i) with a learned w_t per tower (NCF's GMF, "
                            "w_t = 1 at the start); auto: gmf for towers that share p, q with another tower "
                            "(Multi-IPW, ESMM, IPS-V2, ...), dot otherwise")


class DcnConfig(Section):
    """The ``dcn`` backbone (DCN-v2, :mod:`trainer.model.dcn`): ``tfrs.layers.dcn.Cross`` layers over the
    concatenated field vectors, x_{l+1} = x_0 ⊙ (W x_l + b) + x_l."""

    cross_layers: int = Field(2, ge=1, description="how many Cross layers")
    structure: Literal["stacked", "parallel"] = Field(
        "stacked", description="stacked: cross layers, then the MLP (model.tower) on their output; parallel: "
        "the cross layers and the MLP both read the fields, their outputs concatenated; then Dense(1)")
    projection_dim: Optional[int] = Field(None, gt=0, description="low-rank W = U V of this rank; null: full W")


class DlrmConfig(Section):
    """The ``dlrm`` backbone (:mod:`trainer.model.dlrm`): numeric fields through the bottom MLP to the
    embedding size, ``tfrs.layers.feature_interaction.DotInteraction`` over every field vector (all of one
    size), [bottom output : interactions] through the top MLP (``model.tower``) and Dense(1)."""

    bottom_units: list[int] = Field([32], description="hidden widths of the bottom MLP on the numeric fields "
                                    "(its last layer is the embedding size)")
    self_interaction: bool = Field(False, description="include ⟨v_i, v_i⟩ in the interactions")


class MmoeConfig(Section):
    """The ``mmoe`` backbone (:mod:`trainer.model.experts`): ``experts`` shared expert MLPs over the
    concatenated fields, one gate per tower, each tower's own head (``model.tower``) and Dense(1)."""

    experts: int = Field(4, ge=1, description="K, shared experts")
    expert_units: list[int] = Field([64], min_length=1, description="widths of each expert MLP")
    gate: Literal["softmax", "relu"] = Field(
        "softmax", description="softmax(W h) (MMoE); relu: EASQ's ReLU router with its L1 penalty")


class PleConfig(Section):
    """The ``ple`` backbone (:mod:`trainer.model.experts`): one extraction layer of PLE (Tang et al. 2020):
    shared experts + each tower's own, a softmax gate per tower over its own + the shared, then its head."""

    shared_experts: int = Field(2, ge=1, description="experts every tower reads")
    task_experts: int = Field(1, ge=1, description="experts of each tower alone")
    expert_units: list[int] = Field([64], min_length=1, description="widths of each expert MLP")


class EasqSettings(Section):
    """easq (seed 001): the network (eqs. 6–14), the loss (eqs. 11, 15–17) and the pair formation.

    The baselines and ablations are settings of the same network (``configs/easq.yaml``):
    behaviour-only ``lambda1 = lambda2 = 0, lora: false``; Imputation Network ``lora: false,
    shared_bottom: true, lambda2 = 0``; w/o LoRA ``lora: false``; w/o MoE ``main_experts =
    satisfaction_experts = 1``; w/o DPO ``lambda2 = 0``; oracle ``main_target: gt_satisfaction``.
    """

    units: int = Field(64, ge=1, description="width of h = W0 x (eq. 6)")
    lora: bool = Field(True, description="the LoRA pathway h_LoRA = B A x (eq. 7); false: h_LoRA = 0 (w/o LoRA)")
    lora_rank: int = Field(8, ge=1, description="r of B A")
    lora_reads_input: bool = Field(
        True, description="L_satis may reach x (the shared embeddings) through B A x, as eq. 7 is written; false "
        "feeds stop_grad(x) to the LoRA path")
    shared_bottom: bool = Field(
        False, description="h_satis = h + h_LoRA without the stop-gradient of eq. 12: L_satis trains the shared "
        "backbone W0 (an Imputation-Network-style multi-task model, not EASQ)")
    main_experts: int = Field(4, ge=1, description="K1, experts of the main task (eq. 9)")
    satisfaction_experts: int = Field(2, ge=1, description="K2, experts of the satisfaction task (eq. 13)")
    expert_units: list[int] = Field([32, 1], min_length=1, description="each expert FFN's widths; the last is 1")
    target_sparsity: float = Field(0.5, ge=0, lt=1, description="ReMoE target share of zero gates (K > 1)")
    lambda1: float = Field(1.0, ge=0, description="λ1, weight of L_satis (eq. 17)")
    lambda2: float = Field(1.0, ge=0, description="λ2, weight of L_DPO (eq. 17); 0 = w/o DPO")
    beta: float = Field(0.1, gt=0, description="β of L_DPO (eq. 16), 0.1 in the paper")
    log_pi: Literal["softmax", "sigmoid"] = Field(
        "softmax", description="log π of a score: 'softmax' = score − log Z(user) (Z cancels in a same-user pair); "
        "'sigmoid' = log σ(score)")
    uncertain: Literal["exclude", "middle"] = Field(
        "exclude", description="'uncertain' answers: left out of questionnaire pairs, or graded between "
        "dissatisfied and satisfied")
    buffer_capacity: int = Field(8, ge=1, description="answers kept per user to pair new answers with (D+)")
    buffer_max_age: Optional[int] = Field(None, ge=1, description="drop buffered answers older than this many "
                                          "batches; null keeps them until the capacity pushes them out")
    behaviour_pairs: Literal["request", "user"] = Field(
        "request", description="B+ of eq. 11: pairs within a request, or within a user's rows of the batch")
    main_target: Literal["behaviour", "gt_satisfaction"] = Field(
        "behaviour", description="what orders B+: behaviour (like > valid play > none), or the simulator's "
        "gt_satisfaction (the oracle ranker; simulated data only)")

    @field_validator("expert_units")
    @classmethod
    def _score_last(cls, value):
        if value[-1] != 1 or any(u < 1 for u in value):
            raise ValueError(f"expert_units must be positive widths ending in 1 (the score), got {value}")
        return value


# --------------------------------------------------------------------------- the groups
class Towers(Section):
    """The multi-task model's towers (every estimator built on :mod:`trainer.model.multitask`) and the
    backbone that turns a tower's embedded features into its logit (:mod:`trainer.model.backbones`)."""

    tower: TowerConfig = TowerConfig()
    backbone: str = Field("mlp", description="every tower's backbone: mlp (today's towers), mf, dcn, dlrm, "
                          "mmoe or ple (docs/backbones.md)")
    tower_backbones: dict[str, str] = Field(
        {}, description="per-tower override of backbone, e.g. {ctr: mlp} (the propensity tower an MLP)")
    separate_embeddings: bool = Field(
        False, description="every tower its own embedding tables, overriding the estimator's sharing (e.g. "
                           "IPS-V2 / DR-V2 as seed 002's reference code trains them: separate propensity and "
                           "prediction models co-trained by one loss)")
    mf: MfConfig = MfConfig()
    dcn: DcnConfig = DcnConfig()
    dlrm: DlrmConfig = DlrmConfig()
    mmoe: MmoeConfig = MmoeConfig()
    ple: PleConfig = PleConfig()

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, name):
        from trainer.model.backbones import get_backbone
        get_backbone(name)
        return name

    @field_validator("tower_backbones")
    @classmethod
    def _known_backbones(cls, names):
        from trainer.model.backbones import get_backbone
        for name in names.values():
            get_backbone(name)
        return names

    def backbone_of(self, tower: str) -> str:
        return self.tower_backbones.get(tower, self.backbone)


class Weighting(Section):
    """Inverse-propensity weights (:mod:`trainer.model.propensity`); the CVR family's validation
    metric ``cvr_snips_logloss`` weights by them too."""

    ipw: IpwConfig = IpwConfig()


class Undersampling(Section):
    """Negative under-sampling in the DR loss (seed 003 §5.3)."""

    undersample_rate: Optional[float] = Field(
        None, gt=0, description="λ: per batch keep every clicked row and λ·N_clicked unclicked rows in the "
        "DR loss (seed 003 §5.3); null keeps every row")


class Imputation(Section):
    """The imputation tower of the DR family (:func:`trainer.model.propensity.imputed_error`)."""

    imputation_target: Literal["label", "error"] = Field(
        "label", description="'label': the imputation tower predicts the conversion r̃ and ê = e(r̃, r̂); "
        "'error': it regresses the error directly, ê = softplus(z) (then ê carries no gradient to r̂)")


class ImputationWeight(Section):
    """Weight of the imputation loss L_e inside one total loss (not for alternating updates)."""

    imputation_weight: float = Field(1.0, ge=0, description="weight of the imputation model's own loss L_e")


class HeuristicImputation(Section):
    heuristic_eta: float = Field(0.002, gt=0, lt=1, description="heuristic_dr: P(conversion) imputed to every row")


class Oversampling(Section):
    oversample_k: int = Field(5, ge=1, description="oversampling: how many times each positive counts")


class Counterfactual(Section):
    counterfactual_weight: float = Field(
        1.0, ge=0, description="ESCM2: weight λ_c of the counterfactual IPW / DR CVR regulariser")


class RelMfConfig(Section):
    """rel_mf (Saito et al. 2020): θ_i = (n_i / max n)^power from the train clicks; ``none``: plain MF."""

    propensity: Literal["popularity", "none"] = "popularity"
    power: float = Field(0.5, gt=0, description="η in θ_i = (n_i / max n)^η")


class RelMf(Section):
    rel_mf: RelMfConfig = RelMfConfig()


class TwoStagePropensity(Section):
    propensity_epochs: Optional[int] = Field(
        None, gt=0, description="ips, dr_jl: epochs of the propensity model's own stage; null = train.epochs")


class Balancing(Section):
    bmse: BmseConfig = BmseConfig()


class Survey(Section):
    survey: SurveyConfig = SurveyConfig()


class CIps(Section):
    c_ips: CIpsConfig = CIpsConfig()


class EasqGroup(Section):
    easq: EasqSettings = EasqSettings()


# every group, in the order the keys appear in a resolved config
GROUPS: tuple[type[Section], ...] = (Towers, Weighting, Undersampling, ImputationWeight, Imputation,
                                     HeuristicImputation, Oversampling, Counterfactual, Balancing, Survey, CIps,
                                     TwoStagePropensity, RelMf, EasqGroup)


def keys_of(group: type[Section]) -> tuple[str, ...]:
    return tuple(group.model_fields)
