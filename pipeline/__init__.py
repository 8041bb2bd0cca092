"""Preprocessing: raw logs -> validated, split, transformed TFRecord shards (Apache Beam + TFT).

``job`` wires the Beam job; ``sources`` / ``aliccp`` / ``ratings`` read, ``validation`` types and
rejects, ``splits`` assigns, ``sink`` + ``encode`` write, ``report`` reconciles, ``runners`` picks
the Beam runner. ``simulate`` / ``simulate_ratings`` generate data with known truth.
"""
import os

# Keras 2 (tf_keras) must be selected before TensorFlow is first imported: TFT and TFRS are Keras-2 libraries.
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
