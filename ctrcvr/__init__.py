"""ctrcvr: debiased CTR / CVR / satisfaction estimation on Beam, TFT and Keras.

Keras 2 (``tf_keras``) must be selected before TensorFlow is first imported, because
TensorFlow Transform and TensorFlow Recommenders are Keras-2 libraries. Every package
of the project imports this module (or sets the variable itself) first.
"""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
