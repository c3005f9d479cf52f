"""`serve`: the export over HTTP, TensorFlow Serving compatible, with an upload page.

    python -m deepwave_tf.serve --model EXPORT [--host 127.0.0.1] [--port 8501] [--name deepwave]

- `app.py`: the Starlette app (routes, API key, limits, metrics) and the CLI;
- `model.py`: the export loaded with plain `tf.saved_model.load`, and TF
  Serving's REST request / response bodies;
- `batching.py`: the bounded queue that batches concurrent requests;
- `static/index.html`: the upload page (plain JS and SVG, no CDN).
"""

from deepwave_tf.serve.app import ServeConfig, ServeError, build_app, main, run

__all__ = ["ServeConfig", "ServeError", "build_app", "main", "run"]
