"""The trainer stage of ctrcvr."""
import ctrcvr  # noqa: F401  (selects Keras 2 before TensorFlow loads)
