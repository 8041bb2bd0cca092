"""Preprocessing: raw logs -> validated, split, transformed TFRecord shards (Apache Beam + TFT).

``config`` holds the stage's sections; ``inputs`` is the source registry (``sources/`` find and read
each source's inputs, ``formats`` reads one file: csv, parquet, whitespace, matrix); ``tasks`` says
what each task's labels mean; ``job`` wires the Beam job: ``read`` reads and validates
(``validation``, ``columns``), ``splits`` assigns, ``sink`` + ``encode`` write, ``spill`` keeps the
first pass for the second, ``report`` reconciles, ``runners`` picks the Beam runner.
``simulators/`` generate data with known truth.
"""
import os

# Keras 2 (tf_keras) must be selected before TensorFlow is first imported: TFT and TFRS are Keras-2 libraries.
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
