"""Test-wide setup: Keras 2 must be selected before any test imports TensorFlow."""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
