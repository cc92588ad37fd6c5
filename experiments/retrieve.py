"""Nearest test items to a sentence, a sound file or an image file, in a trained run's shared representation.

    python -m experiments.retrieve --workdir=runs/world \
        --query_text="a big red dog barks" --target=sound --top_k=5
    python -m experiments.retrieve --workdir=... --query_sound=bark.wav --target=image
    python -m experiments.retrieve --workdir=... --export=test_embeddings.npz

The run's saved config is used (--config and --config.* overrides apply on top). See
experiments/search/index.py for how queries are read and what --export writes.
"""

from absl import app, flags

from alignment.streams import MODALITIES
from experiments.cli import launch
from experiments.search.index import SearchIndex, format_matches, query_inputs

QUERY_TEXT = flags.DEFINE_string("query_text", None, "A sentence to search with.")
QUERY_SOUND = flags.DEFINE_string("query_sound", None, "A sound file (wav, flac, ogg, mp3).")
QUERY_IMAGE = flags.DEFINE_string("query_image", None, "An image file (png, jpg, ...).")
TARGET = flags.DEFINE_enum("target", "image", MODALITIES, "Modality to retrieve.")
TOP_K = flags.DEFINE_integer("top_k", 5, "How many test items to print.")
EXPORT = flags.DEFINE_string("export", None, "Write all test embeddings to this .npz file.")


def main(argv):
    del argv
    launch.initialize()
    queries = (QUERY_TEXT.value, QUERY_SOUND.value, QUERY_IMAGE.value)
    if all(q is None for q in queries) and not EXPORT.value:
        raise app.UsageError("give --query_text, --query_sound or --query_image, or --export")
    index = SearchIndex(launch.config(), launch.WORKDIR.value)
    if any(q is not None for q in queries):
        modality, inputs = query_inputs(
            index.config,
            index.builder,
            sentence=QUERY_TEXT.value,
            sound_path=QUERY_SOUND.value,
            image_path=QUERY_IMAGE.value,
        )
        matches = index.search(modality, inputs, TARGET.value, TOP_K.value)
        print(
            f"{modality} query -> test {TARGET.value} (layer {index.layers[0]}, step {index.step})"
        )
        print(format_matches(matches))
    if EXPORT.value:
        index.export(EXPORT.value)
        print(f"retrieve: wrote {EXPORT.value} (np.load(path, allow_pickle=False))")


if __name__ == "__main__":
    launch.run(main)
