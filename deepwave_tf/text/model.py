"""The text model: raw strings in, one logit out.

    text [batch] string
      -> TextVectorization (standardise, split on whitespace, vocabulary lookup)
         -> token ids [batch, sequence_length_tokens] int64 (0 = padding, 1 = [UNK])
      -> Embedding [vocabulary, embedding_dim] (initialised from the .vec file; mask_zero)
      -> Bidirectional(LSTM(lstm_units)) -> [batch, 2 * lstm_units]
      -> Dropout -> Dense(1) -> logit [batch, 1]

The vectorizer lives inside the model, so training, evaluation, `model.keras`
and the SavedModel all tokenise with the same op and the same vocabulary: no
second tokeniser written by hand for prediction. The model is built from its
config and the vocabulary only; the pretrained vectors are weights set after
building (`set_embeddings`), so they never enter the layer config.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from deepwave_tf.text.config import TextModelConfig

TEXT = "text"  # keras.Input name = serving signature input name
VECTORIZE = "vectorize"
EMBEDDING = "embedding"
MODEL_FILE = "model.keras"


def make_vectorizer(
    cfg: TextModelConfig, vocabulary: Sequence[str] | None = None
) -> keras.layers.TextVectorization:
    """The `TextVectorization` layer of `cfg` (with `vocabulary`, or to be adapted)."""
    return keras.layers.TextVectorization(
        max_tokens=cfg.max_tokens,
        standardize=cfg.standardize,
        split="whitespace",
        output_mode="int",
        output_sequence_length=cfg.sequence_length_tokens,
        vocabulary=None if vocabulary is None else list(vocabulary),
        name=VECTORIZE,
    )


def build_vocabulary(texts: Sequence[str], cfg: TextModelConfig) -> list[str]:
    """The vocabulary of `texts`, most frequent first, at most `cfg.max_tokens` entries.

    Returns:
        `["", "[UNK]", word, ...]`: index 0 is padding, 1 out-of-vocabulary.
    """
    import tensorflow as tf

    vectorizer = make_vectorizer(cfg)
    vectorizer.adapt(tf.constant(list(texts), tf.string))
    return list(vectorizer.get_vocabulary())


def build_model(
    cfg: TextModelConfig, vocabulary: Sequence[str], embeddings: np.ndarray | None = None
) -> keras.Model:
    """The model of `cfg` over `vocabulary` (`build_vocabulary`), optionally with `embeddings`.

    Args:
        cfg: model config; `cfg.embedding_dim` must be resolved (> 0).
        vocabulary: `["", "[UNK]", word, ...]`.
        embeddings: `[len(vocabulary), embedding_dim]` initial vectors (`vectors.load_vectors`).

    Returns:
        An uncompiled `keras.Model`: `text` `[batch]` string -> logit `[batch, 1]` float32.
    """
    if cfg.embedding_dim <= 0:
        raise ValueError(
            "model.embedding_dim must be resolved before building (fit takes it from the .vec file)"
        )
    vocabulary = list(vocabulary)
    # Tokens
    text = keras.Input(shape=(), dtype="string", name=TEXT)
    tokens = make_vectorizer(cfg, vocabulary)(text)
    # Embedding: pretrained vectors, frozen unless model.embedding_trainable
    x = keras.layers.Embedding(
        input_dim=len(vocabulary),
        output_dim=cfg.embedding_dim,
        mask_zero=True,  # padding never reaches the LSTM state
        trainable=cfg.embedding_trainable,
        name=EMBEDDING,
    )(tokens)
    # Encoder: BiLSTM, last state of each direction
    x = keras.layers.Bidirectional(keras.layers.LSTM(cfg.lstm_units), name="bilstm")(x)
    x = keras.layers.Dropout(cfg.dropout, name="dropout")(x)
    # Head: one logit (sigmoid -> probability of data.labels[1])
    logit = keras.layers.Dense(1, name="logit")(x)
    model = keras.Model(text, logit, name="text_bilstm")
    if embeddings is not None:
        set_embeddings(model, embeddings)
    return model


def set_embeddings(model: keras.Model, embeddings: np.ndarray) -> None:
    """Load `[vocabulary, embedding_dim]` vectors into the model's embedding layer."""
    layer = model.get_layer(EMBEDDING)
    want = tuple(layer.embeddings.shape)
    if tuple(embeddings.shape) != want:
        raise ValueError(f"embeddings have shape {tuple(embeddings.shape)}, the layer {want}")
    layer.embeddings.assign(np.asarray(embeddings, np.float32))


def vocabulary_of(model: keras.Model) -> list[str]:
    """The vocabulary of a built model, `["", "[UNK]", word, ...]`."""
    return list(model.get_layer(VECTORIZE).get_vocabulary())


def load_model(run_dir: str | Path) -> keras.Model:
    """`run_dir/model.keras` (uncompiled), as `text.fit` wrote it.

    Raises:
        FileNotFoundError: no model.keras in `run_dir`.
    """
    path = Path(run_dir) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"no {MODEL_FILE} in {run_dir}: train first (python -m deepwave_tf.text.fit)"
        )
    return keras.saving.load_model(path, compile=False)


def predict_logits(model: keras.Model, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Logits `[N]` float32 of `texts` with a Keras model, in inference mode, batched.

    `model.predict` traces its predict step once per model; a fresh `tf.function`
    per call would retrace every time.
    """
    import tensorflow as tf

    if not len(texts):
        return np.zeros(0, np.float32)
    ds = tf.data.Dataset.from_tensor_slices(tf.constant(list(texts), tf.string)).batch(batch_size)
    return np.asarray(model.predict(ds, verbose=0), np.float32).reshape(-1)
