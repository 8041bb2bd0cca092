"""``simulate_video``: the short-video world of EASQ (seed 001) as a typed config section.

One field per :class:`pipeline.simulators.video.VideoWorld` knob, same name, same default, same meaning
(a test pins that the two agree), plus how the log is written (``formats``, ``shard_requests``).
Importing it is cheap; validating checks the knobs with VideoWorld itself.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from transforms.schema import Section


class SimulateVideoConfig(Section):
    """The world of ``pipeline.simulators.video`` (``data.source: simulated_video``)."""

    n_users: int = Field(2_000, gt=0, description="users, drawn per request by a lognormal activity")
    n_items: int = Field(1_500, gt=0, description="videos, drawn by a Zipf-like popularity")
    n_days: int = Field(7, gt=0, description="requests spread evenly over days, in time order")
    n_requests: int = Field(20_000, gt=0, description="requests (a feed page each)")
    candidates_per_request: int = Field(10, gt=0, description="distinct items per request, position 0..C-1")
    latent_dim: int = Field(8, gt=0, description="d of the appeal and the quality subspaces")
    popularity_exponent: float = Field(0.8, ge=0, description="Zipf exponent of item popularity")
    behaviour_satisfaction_agreement: float = Field(
        0.5, ge=0, le=1, description="rho: appeal A = rho S + sqrt(1 - rho^2) I; 1 = behaviour driven by "
        "satisfaction itself (aligning can gain nothing)")
    clickbait_share: float = Field(0.08, ge=0, le=1, description="share of authors (and items) that are clickbait")
    clickbait_pull: float = Field(2.0, description="clickbait's push on interest I (draws plays)")
    clickbait_letdown: float = Field(1.5, description="clickbait's cut of satisfaction S")
    play_rate: float = Field(0.35, ge=0, le=1, description="mean P(valid play) over candidates")
    like_rate: float = Field(0.08, ge=0, le=1, description="mean P(like | play)")
    questionnaire_share: float = Field(
        0.20, ge=0, le=1, description="share of qualifying views that show a questionnaire (paper: about 0.005)")
    answer_rate: float = Field(0.30, ge=0, le=1, description="mean P(answer | shown) (paper: below 0.02)")
    response_bias: float = Field(0.0, description="slope of the answer logit on S: > 0 = satisfied users answer more")
    answer_noise: float = Field(0.5, gt=0, description="scale of the logistic noise on S read by the answer")
    uncertain_band: float = Field(0.4, ge=0, description="|S + noise| below this answers 'uncertain'")
    drift_per_day: float = Field(0.1, ge=0, le=1, description="delta of the user factors' daily AR(1) drift")
    min_watch_seconds: float = Field(7.0, ge=0, description="a qualifying view: watched at least this long ...")
    min_watch_ratio: float = Field(0.5, ge=0, le=1, description="... or at least this share of the video")
    formats: list[Literal["csv", "parquet"]] = Field(["parquet"], min_length=1,
                                                     description="shard formats written (the source reads Parquet)")
    shard_requests: int = Field(5_000, gt=0, description="requests per shard file")

    @model_validator(mode="after")
    def _check_world(self):
        self.world()  # VideoWorld's own checks (e.g. candidates_per_request <= n_items)
        if "parquet" not in self.formats:
            raise ValueError("formats must include parquet: the simulated_video source reads the Parquet shards")
        return self

    def world(self):
        """The :class:`pipeline.simulators.video.VideoWorld` these knobs describe."""
        from pipeline.simulators.video import VideoWorld
        return VideoWorld(**self.model_dump(exclude={"formats", "shard_requests"}))
