"""deepwave_tf: tell real voices from fake ones with a two-input CNN + BiLSTM in Keras 3.

Stages, each a thin CLI in front of a `run(cfg, ...)` function:
`prep` (audio -> sharded TFRecords), `fit`, `tune`, `export` (calibrated
SavedModel taking raw audio), `predict`, `submit`, `evaluate`.
Nothing runs at import time; TensorFlow is imported by the modules that need it.
"""

__version__ = "0.1.0"
