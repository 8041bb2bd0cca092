"""The pipeline's task table: one record per task of transforms.schema, label rules by record."""
import pytest

from ctrcvr.config import config_from_dict
from pipeline.tasks import PIPELINE_TASKS, get_pipeline_task
from transforms.schema import TASKS


def test_every_task_of_the_schema_has_its_pipeline_record():
    assert set(PIPELINE_TASKS) == set(TASKS)
    assert [n for n, t in PIPELINE_TASKS.items() if t.derives_labels] == ["ratings", "questionnaire"]
    assert [n for n, t in PIPELINE_TASKS.items() if t.optional_outcome] == ["survey"]
    with pytest.raises(KeyError, match="known: conversion, survey, ratings, questionnaire"):
        get_pipeline_task("clicks")


def test_a_task_that_derives_its_labels_reads_the_rating_column_of_the_ratings_section():
    data = config_from_dict({"data": {"source": "ratings", "ratings": {"columns": ["u", "i", "stars"]}}}).data
    assert get_pipeline_task("ratings").rating_column(data) == "stars"
    assert get_pipeline_task("conversion").rating_column(data) is None
    assert get_pipeline_task("questionnaire").rating_column(data) == "answer"  # its own label source
