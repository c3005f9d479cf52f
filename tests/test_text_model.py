"""deepwave_tf.text.model: vocabulary, shapes, pretrained embeddings, masking, save/load."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from deepwave_tf.text import model as model_lib
from deepwave_tf.text.config import TextModelConfig

TEXTS = ["Press one for sales.", "The river ran dark and cold.", "press two, then POUND!"]
CFG = TextModelConfig(max_tokens=50, sequence_length_tokens=6, embedding_dim=8, lstm_units=3)


def test_vocabulary_and_vectorizer():
    vocab = model_lib.build_vocabulary(TEXTS, CFG)
    assert vocab[:3] == ["", "[UNK]", "press"]  # padding, OOV, then the most frequent
    assert "pound" in vocab and "POUND!" not in vocab  # lower case, punctuation stripped
    ids = np.asarray(model_lib.make_vectorizer(CFG, vocab)(tf.constant(TEXTS + ["zzz", ""])))
    assert ids.shape == (5, 6)
    assert ids[1].tolist() == [vocab.index(w) for w in "the river ran dark and cold".split()]
    assert ids[3].tolist() == [1, 0, 0, 0, 0, 0]  # unknown word, then padding
    assert ids[4].tolist() == [0] * 6


def test_model_shapes_embeddings_and_trainable():
    vocab = model_lib.build_vocabulary(TEXTS, CFG)
    emb = np.random.default_rng(0).standard_normal((len(vocab), 8)).astype(np.float32)
    model = model_lib.build_model(CFG, vocab, emb)
    out = model(tf.constant(TEXTS))
    assert out.shape == (3, 1) and out.dtype == tf.float32
    np.testing.assert_array_equal(model.get_layer("embedding").embeddings.numpy(), emb)
    frozen = {w.path for w in model.non_trainable_weights}
    assert any("embedding" in p for p in frozen)
    lstm_params = 2 * 4 * 3 * (8 + 3 + 1)  # 2 directions x 4 gates x units x (in + units + bias)
    assert model.count_params() == len(vocab) * 8 + lstm_params + (2 * 3 + 1)
    trainable = model_lib.build_model(dataclasses.replace(CFG, embedding_trainable=True), vocab)
    assert any("embedding" in w.path for w in trainable.trainable_weights)
    with pytest.raises(ValueError, match="embeddings have shape"):
        model_lib.set_embeddings(model, emb[:, :4])
    with pytest.raises(ValueError, match="embedding_dim must be resolved"):
        model_lib.build_model(dataclasses.replace(CFG, embedding_dim=0), vocab)


def test_padding_is_masked():
    """The same text gives the same logit whatever the sequence length (padding never counts)."""
    vocab = model_lib.build_vocabulary(TEXTS, CFG)
    keras.utils.set_random_seed(0)
    short = model_lib.build_model(CFG, vocab)
    long = model_lib.build_model(dataclasses.replace(CFG, sequence_length_tokens=20), vocab)
    long.set_weights(short.get_weights())
    x = tf.constant(TEXTS[:2])
    np.testing.assert_allclose(short(x), long(x), atol=1e-6)


def test_keras_file_round_trip(tmp_path):
    vocab = model_lib.build_vocabulary(TEXTS, CFG)
    model = model_lib.build_model(CFG, vocab)
    model.save(tmp_path / model_lib.MODEL_FILE)
    again = model_lib.load_model(tmp_path)
    assert model_lib.vocabulary_of(again) == vocab
    x = tf.constant(TEXTS)
    np.testing.assert_allclose(model(x), again(x), atol=1e-6)
    logits = model_lib.predict_logits(again, TEXTS, batch_size=2)  # two batches: 2 + 1
    assert logits.shape == (3,) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, np.asarray(model(x))[:, 0], atol=1e-6)
    with pytest.raises(FileNotFoundError, match="no model.keras"):
        model_lib.load_model(tmp_path / "nope")
