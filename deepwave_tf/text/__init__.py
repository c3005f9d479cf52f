"""The text classifier: a port of the seed project's `bilstmtest.py`.

Pretrained word vectors (a fastText `.vec` file, streamed by `vectors`)
initialise the embedding of a `TextVectorization` -> `Embedding` ->
`Bidirectional(LSTM)` -> `Dense(1)` logit model, trained with binary
cross-entropy on a `text,label` csv. Same house as the audio side: one frozen
config per stage (`config`), thin CLIs `python -m deepwave_tf.text.X` calling
`run(...)`, a run directory, and a SavedModel export on raw strings that bare
TensorFlow loads.

Modules: `config`, `vectors` (streaming `.vec` reader), `data` (csv, split,
tf.data), `model`, `fit`, `evaluate`, `predict`, `export`. Nothing happens at
import time; TensorFlow is imported only by the modules that need it.
"""
