"""A local web page to search an index folder with a sentence, an image or a sound.

    python -m experiments.serve --index=runs/world/media_index --port=8000

Then open http://127.0.0.1:8000. The run that made the index is restored on the first query. See
docs/own_media.md.
"""

from absl import flags, logging

from experiments.cli import launch
from experiments.media.page import DEFAULT_MAX_UPLOAD_BYTES, Searcher, SearchServer
from experiments.media.search import Index

INDEX = flags.DEFINE_string("index", None, "The index folder to search.")
HOST = flags.DEFINE_string("host", "127.0.0.1", "Address to listen on.")
PORT = flags.DEFINE_integer("port", 8000, "Port to listen on.")
MAX_UPLOAD = flags.DEFINE_integer(
    "max_upload_bytes", DEFAULT_MAX_UPLOAD_BYTES, "Largest upload accepted."
)


def main(argv):
    del argv
    launch.require(INDEX)
    launch.initialize()
    server = SearchServer((HOST.value, PORT.value), Searcher(Index(INDEX.value), MAX_UPLOAD.value))
    logging.info("serve: http://%s:%d/ (%s)", HOST.value, server.server_port, INDEX.value)
    print(f"serve: http://{HOST.value}:{server.server_port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.server_close()


if __name__ == "__main__":
    launch.run(main)
