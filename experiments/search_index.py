"""The items of an index folder (`python -m experiments.index`) nearest to a sentence, sound or image.

    python -m experiments.search_index --index=runs/world/media_index \
        --query_text="a big red dog barks" --target=sound --top_k=5
    python -m experiments.search_index --index=... --query_image=cat.png --target=text

The query is embedded by the run that made the index. See docs/own_media.md.
"""

from absl import app, flags

from alignment.streams import MODALITIES
from experiments.cli import launch
from experiments.media.search import Index

INDEX = flags.DEFINE_string("index", None, "The index folder to search.")
QUERY_TEXT = flags.DEFINE_string("query_text", None, "A sentence to search with.")
QUERY_SOUND = flags.DEFINE_string("query_sound", None, "A sound file (wav, flac, ogg, mp3).")
QUERY_IMAGE = flags.DEFINE_string("query_image", None, "An image file (png, jpg, ...).")
TARGET = flags.DEFINE_enum("target", "image", MODALITIES, "Modality to retrieve.")
TOP_K = flags.DEFINE_integer("top_k", 5, "How many items to print.")


def main(argv):
    del argv
    launch.require(INDEX)
    queries = {"text": QUERY_TEXT.value, "sound": QUERY_SOUND.value, "image": QUERY_IMAGE.value}
    given = {m: q for m, q in queries.items() if q is not None}
    if len(given) != 1:
        raise app.UsageError("give exactly one of --query_text, --query_sound, --query_image")
    launch.initialize()
    index = Index(INDEX.value)
    ((modality, query),) = given.items()
    matches = index.search(index.embedder().embed_one(modality, query), TARGET.value, TOP_K.value)
    print(f"{modality} query -> {TARGET.value} ({index.size(TARGET.value)} items in {INDEX.value})")
    for m in matches:
        print(f"{m.rank:>3}  {m.cosine:+.3f}  {m.path}  {m.caption}".rstrip())


if __name__ == "__main__":
    launch.run(main)
