"""Embeds every image, sound and sentence of a folder (or a manifest .jsonl) with a trained run.

    python -m experiments.index --workdir=runs/world --source=~/media --index=runs/world/media_index

A rerun with the same flags resumes: the shards already written are kept. The run's saved config is used
(--config.* overrides apply on top). See docs/own_media.md for the index folder's format.
"""

from absl import flags

from experiments.cli import launch
from experiments.media.build import DEFAULT_SHARD_SIZE, build_index
from experiments.media.embedder import Embedder
from experiments.media.store import DTYPES

SOURCE = flags.DEFINE_string("source", None, "The folder (or manifest .jsonl) to index.")
INDEX = flags.DEFINE_string("index", None, "The index folder to write.")
DTYPE = flags.DEFINE_enum("dtype", "float32", DTYPES, "Stored embedding dtype.")
SHARD_SIZE = flags.DEFINE_integer("shard_size", DEFAULT_SHARD_SIZE, "Items per shard.")


def main(argv):
    del argv
    launch.require(SOURCE, INDEX)
    launch.initialize()
    embedder = Embedder(launch.WORKDIR.value, launch.config())
    meta = build_index(embedder, SOURCE.value, INDEX.value, DTYPE.value, SHARD_SIZE.value)
    print(f"index: {INDEX.value}: items {meta['items']}, skipped {meta['skipped']}")


if __name__ == "__main__":
    launch.run(main)
