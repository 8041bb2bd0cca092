"""The trainer stage's config sections: the estimator and its model (``model``), training, evaluation
and export (``train``, ``eval``, ``export``)."""
from __future__ import annotations

from typing import Any, Literal, Optional, Union

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
    weight: float = Field(1.0, ge=0, description="λ in L = L_IPS/DR + λ·BMSE")
    user_feature: str = "user_id"
    item_feature: str = "item_id"

    @field_validator("phi", mode="before")
    @classmethod
    def _phi_as_text(cls, value):
        return str(value) if isinstance(value, int) else value


class SurveyConfig(Section):
    """survey_ipw / survey_standalone (seed 000 §4): the satisfaction head and the response-rate head.

    The click label column holds ``responded``, the conversion label column the ``rating`` (any value
    where not responded: it is never read there). Weights 1/p̂ are formed by ``model.ipw``
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


class ModelConfig(Section):
    name: str = "esmm"
    embedding_dim: int = Field(8, gt=0)
    tower: TowerConfig = TowerConfig()
    ipw: IpwConfig = IpwConfig()
    undersample_rate: Optional[float] = Field(
        None, gt=0, description="λ: per batch keep every clicked row and λ·N_clicked unclicked rows in the "
        "DR loss (seed 003 §5.3); null keeps every row")
    imputation_weight: float = Field(1.0, ge=0, description="weight of the imputation model's own loss L_e")
    imputation_target: Literal["label", "error"] = Field(
        "label", description="'label': the imputation tower predicts the conversion r̃ and ê = e(r̃, r̂); "
        "'error': it regresses the error directly, ê = softplus(z) (then ê carries no gradient to r̂)")
    heuristic_eta: float = Field(0.002, gt=0, lt=1, description="heuristic_dr: P(conversion) imputed to every row")
    oversample_k: int = Field(5, ge=1, description="oversampling: how many times each positive counts")
    counterfactual_weight: float = Field(
        1.0, ge=0, description="ESCM2: weight λ_c of the counterfactual IPW / DR CVR regulariser")
    bmse: BmseConfig = BmseConfig()
    survey: SurveyConfig = SurveyConfig()
    c_ips: CIpsConfig = CIpsConfig()


class TrainConfig(Section):
    batch_size: int = Field(1024, gt=0)
    epochs: int = Field(3, gt=0)
    learning_rate: float = Field(1e-3, gt=0)
    shuffle_buffer: int = Field(20_000, ge=0)
    steps_per_epoch: Optional[int] = Field(None, gt=0)
    verbose: int = Field(2, ge=0, le=2)
    early_stopping_patience: Optional[int] = Field(
        None, ge=1, description="stop after this many epochs without improvement of early_stopping_monitor "
        "and restore the best weights; null = off")
    early_stopping_monitor: str = Field(
        "val_loss", pattern=r"^val_", description="val_loss, val_<term> of the estimator, or (CVR estimators) "
        "val_ctcvr_logloss: log loss of the served pCTCVR against click·conversion, comparable across estimators")
    dense_embedding_gradients: bool = Field(
        True, description="densify embedding-table gradients before the (legacy, fused) Adam update: "
        "faster for tables that fit in memory; turn off for very large tables")
    input_threads: Optional[int] = Field(
        None, ge=1, description="give the tf.data input pipeline a private pool of this many threads (one "
        "per op): on a 2-core machine 1 stops it competing with the train step (ESMM at the seed-003 size "
        "went from ~14k to ~23k examples/s); null = TensorFlow's shared pool")


class EvalConfig(Section):
    group_by: str = "user_id"
    batch_size: int = Field(8192, gt=0)
    calibration_slices: list[str] = Field(
        [], description="CVR family, simulated data: declared features whose values slice the eval split for "
        "cvr_log_bias_sd_by_<feature>, the exposure-weighted sd over slices of log(mean pCVR / mean gt_cvr): "
        "0 when every slice has the same relative bias, larger when the model learnt a spurious effect "
        "of the feature (e.g. [position])")
    ranking_ks: list[int] = Field(
        [1, 3, 5], min_length=1, description="ratings: K of NDCG@K, DCG@K, Recall@K, MAP@K (per user)")
    snips_power: float = Field(
        0.5, gt=0, description="ratings: the SNIPS estimate on the MNAR eval split weights by 1/p̂ with "
        "Rel-MF's popularity propensity p̂(v) = (n(v) / max n)^power, n counted on the train split")

    @field_validator("ranking_ks")
    @classmethod
    def _positive_ks(cls, value):
        if any(k < 1 for k in value):
            raise ValueError(f"every K must be >= 1, got {value}")
        return sorted(set(value))


class ExportConfig(Section):
    warmup_examples: int = Field(8, ge=0)
