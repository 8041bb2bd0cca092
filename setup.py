"""ctrcvr: debiased CTR / CVR / satisfaction estimation with Beam, TFT and Keras.

This file also ships the package to Dataflow workers (``--setup_file``), so it must stay
importable without the package's own dependencies installed.
"""
from setuptools import find_packages, setup

# The stack that installs and works together on Python 3.11 (see README, "Dependencies").
REQUIRED = [
    "tensorflow==2.21.*",
    "tf_keras==2.21.*",
    "tensorboard>=2.20,<2.22",
    "tensorflow-transform==1.21.*",
    "tfx-bsl==1.21.*",
    "apache-beam[gcp]==2.77.*",
    "tensorflow-recommenders==0.7.7",
    "pandas>=2.2,<4",
    "pyarrow>=14",
    "numpy>=1.26",
    "pydantic>=2.6,<3",
    "PyYAML>=6",
    "matplotlib>=3.8",
    "aiohttp>=3.9",
    "isal>=1.6,<2",  # ISA-L deflate: the TFRecord shards' gzip, 4x faster than zlib (pipeline/sink.py)
]

setup(
    name="ctrcvr",
    version="0.1.0",
    description="Debiased CTR / CVR / satisfaction estimation: Beam + TFT preprocessing, "
                "multi-task Keras estimators (ESMM, Multi-IPW, Multi-DR, ...), TF Serving exports",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["ctrcvr", "ctrcvr.*", "pipeline", "pipeline.*", "transforms",
                                    "transforms.*", "trainer", "trainer.*"]) + ["ctrcvr.configs"],
    # the shipped configs (top-level configs/) install as ctrcvr/configs/*.yaml: `--config NAME` finds them
    package_dir={"ctrcvr.configs": "configs"},
    package_data={"ctrcvr.configs": ["*.yaml"]},
    install_requires=REQUIRED,
    extras_require={"test": ["pytest>=8", "pytest-xdist>=3.6,<4"]},
    entry_points={"console_scripts": ["ctrcvr=ctrcvr.cli:main"]},
)
