import sys

from deepwave_tf.serve.app import main

sys.exit(main())
