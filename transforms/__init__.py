"""The transforms stage of ctrcvr."""
import os

# Keras 2 (tf_keras) must be selected before TensorFlow is first imported: TFT and TFRS are Keras-2 libraries.
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
