"""TFDS builders: the bundled world, a manifest folder, a video folder and COCO captions."""
