"""deepwave_tf: tell real voices from fake ones with a two-input CNN + BiLSTM in Keras 3.

Stages, each a thin CLI in front of a `run(cfg, ...)` function:
`prep` (audio -> sharded TFRecords), `fit`, `tune`, `export` (calibrated
SavedModel taking raw audio), `predict`, `submit`, `evaluate`.
TensorFlow is imported by the modules that need it. The one thing done at
import: when `$DEEPWAVE_XLA_CACHE` names a directory, point XLA's persistent
compilation cache at it (see `_xla_cache_flags`), so the XLA-compiled
augmentation (`augment.jit_compile`) compiles once per machine rather than once
per process.
"""

import os

__version__ = "0.1.0"

XLA_CACHE_ENV = "DEEPWAVE_XLA_CACHE"  # a directory to cache XLA compiles in (opt-in)
_XLA_CACHE_FLAG = "--tf_xla_persistent_cache_directory"


def _xla_cache_flags(environ=os.environ) -> str | None:
    """TF_XLA_FLAGS with the persistent cache directory added, or None to leave them as they are.

    Opt-in: only when $DEEPWAVE_XLA_CACHE names a directory ("" or "off":
    no cache), and the user has not set the flag already. Off by default
    because TensorFlow 2.17 reads each cache entry as a text proto first and
    logs "[libprotobuf ERROR ...] Error parsing text-format
    tensorflow.XlaSerializedCacheEntry" on every hit before reading it as
    binary (harmless, but it looks like a failure), and because the cache
    grows without bound (about 2 MB per compiled pipeline variant).
    TensorFlow reads the flags when it starts, so this only takes effect when
    deepwave_tf is imported before TensorFlow (always so for the CLIs).
    """
    flags = environ.get("TF_XLA_FLAGS", "")
    choice = environ.get(XLA_CACHE_ENV, "")
    if _XLA_CACHE_FLAG in flags or choice.lower() in ("", "off"):
        return None
    try:
        os.makedirs(choice, exist_ok=True)
    except OSError:
        return None
    return f"{flags} {_XLA_CACHE_FLAG}={choice}".strip()


_flags = _xla_cache_flags()
if _flags is not None:
    os.environ["TF_XLA_FLAGS"] = _flags
del _flags
