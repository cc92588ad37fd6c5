"""Everything that touches files: decoding, features, TFDS builders and tf.data streams."""
