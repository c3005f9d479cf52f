"""deepwave_tf: tell real voices from fake ones with a two-input CNN + BiLSTM in Keras 3.

Stages, each a thin CLI in front of a `run(cfg, ...)` function:
`prep` (audio -> sharded TFRecords), `fit`, `tune`, `export` (calibrated
SavedModel taking raw audio), `predict`, `submit`, `evaluate`.
TensorFlow is imported by the modules that need it. The one thing done at
import: point XLA's persistent compilation cache at a directory (see
`_xla_cache_flags`), so the XLA-compiled augmentation (`augment.jit_compile`)
compiles once per machine rather than once per process.
"""

import os

__version__ = "0.1.0"

XLA_CACHE_ENV = "DEEPWAVE_XLA_CACHE"  # a directory, or "off"
_XLA_CACHE_FLAG = "--tf_xla_persistent_cache_directory"


def _xla_cache_flags(environ=os.environ) -> str | None:
    """TF_XLA_FLAGS with the persistent cache directory added, or None to leave them as they are.

    The directory is $DEEPWAVE_XLA_CACHE, else $XDG_CACHE_HOME/deepwave_tf/xla
    (~/.cache/deepwave_tf/xla). Nothing changes when the user already set the
    flag, set $DEEPWAVE_XLA_CACHE=off, or the directory cannot be created.
    TensorFlow reads the flags when it starts, so this only takes effect when
    deepwave_tf is imported before TensorFlow (always so for the CLIs).
    """
    flags = environ.get("TF_XLA_FLAGS", "")
    choice = environ.get(XLA_CACHE_ENV, "")
    if _XLA_CACHE_FLAG in flags or choice.lower() == "off":
        return None
    if not choice:
        base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        choice = os.path.join(base, "deepwave_tf", "xla")
    try:
        os.makedirs(choice, exist_ok=True)
    except OSError:
        return None
    return f"{flags} {_XLA_CACHE_FLAG}={choice}".strip()


_flags = _xla_cache_flags()
if _flags is not None:
    os.environ["TF_XLA_FLAGS"] = _flags
del _flags
