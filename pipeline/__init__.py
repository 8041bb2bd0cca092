"""Preprocessing: raw logs -> validated, split, transformed TFRecord shards (Apache Beam + TFT).

``job`` wires the Beam job; ``sources`` / ``aliccp`` / ``ratings`` read, ``validation`` types and
rejects, ``splits`` assigns, ``sink`` + ``encode`` write, ``report`` reconciles, ``runners`` picks
the Beam runner. ``simulate`` / ``simulate_ratings`` generate data with known truth.
"""
import ctrcvr  # noqa: F401  (selects Keras 2 before TensorFlow loads)
