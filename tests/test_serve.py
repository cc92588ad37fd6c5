"""The local search page on a tiny index: a typed query in a real headless browser (chromium), file
uploads (a sound finds itself; a text file, a broken image and an oversized upload are messages on the
page), indexed media served and nothing else."""

import html.parser
import os
import shutil
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request

import pytest

from experiments.media.build import build_index
from experiments.media.embedder import Embedder
from experiments.media.page import Searcher, SearchServer
from experiments.media.search import Index
from tests import helpers
from tests.test_media_index import train_tiny_run, write_media_folder

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def tiny_index(tiny_world, tmp_path_factory):
    """(index folder, source folder, the indexed test samples)."""
    root = tmp_path_factory.mktemp("serve")
    workdir, source, index_dir = (str(root / n) for n in ("run", "source", "index"))
    train_tiny_run(tiny_world, workdir)
    samples = write_media_folder(source, items=6)
    build_index(Embedder(workdir), source, index_dir)
    return index_dir, source, samples


@pytest.fixture(scope="module")
def server(tiny_index):
    """The page served from this process on a free port: (base url, its Searcher)."""
    searcher = Searcher(Index(tiny_index[0]))
    httpd = SearchServer(("127.0.0.1", 0), searcher)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", searcher
    httpd.shutdown()
    httpd.server_close()


class Matches(html.parser.HTMLParser):
    """Each results column's (caption, path) pairs, in order, and the error message, from a page."""

    def __init__(self, page: str):
        super().__init__()
        self.columns: dict[str, list[list[str]]] = {}
        self.error = ""
        self._column, self._field = None, None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("class") == "col":
            self._column = attrs["id"]
            self.columns[self._column] = []
        elif attrs.get("class") == "match" and self._column:
            self.columns[self._column].append(["", ""])
        elif attrs.get("class") in ("caption", "path"):
            self._field = attrs["class"]
        elif attrs.get("id") == "error":
            self._field = "error"

    def handle_endtag(self, tag):
        if tag in ("div", "p"):
            self._field = None

    def handle_data(self, data):
        if self._field == "error":
            self.error += data
        elif self._field and self._column:
            self.columns[self._column][-1][0 if self._field == "caption" else 1] += data


def _post(url: str, filename: str, data: bytes, target: str = "all") -> tuple[int, str]:
    boundary = "----shrtestboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="target"\r\n\r\n{target}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        url + "/", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_typed_query_in_a_headless_browser(tiny_index, tmp_path):
    """The served command line's page, in chromium: a caption typed in the form finds itself first."""
    index_dir, _, samples = tiny_index
    port = helpers.free_port()
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 (the server writes it until killed)
    serve = subprocess.Popen(
        helpers.python_module("experiments.serve", f"--index={index_dir}", f"--port={port}"),
        cwd=helpers.ROOT,
        env=helpers.subprocess_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        blank = _wait_for_page(f"http://127.0.0.1:{port}/", serve)
        assert "<form" in blank and "Search your media" in blank
        caption = samples[3]["caption"]
        query = urllib.parse.urlencode({"q": caption, "target": "all", "k": 3})
        dom = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
             f"http://127.0.0.1:{port}/?{query}"],
            capture_output=True, text=True, timeout=180,
        ).stdout  # fmt: skip
    finally:
        serve.terminate()
        serve.wait(timeout=30)
        log.close()
    page = Matches(dom)
    assert not page.error, page.error
    assert set(page.columns) == {"image", "sound", "text"}
    assert page.columns["text"][0] == [caption, "captions.txt:7"]
    assert all(len(matches) == 3 for matches in page.columns.values())
    assert 'src="/media?m=image&amp;path=images%2F' in dom and "<audio controls" in dom


def _wait_for_page(url: str, process: subprocess.Popen) -> str:
    """The page at `url` once the server answers (it imports JAX first); fails if the server exits."""
    for _ in range(600):
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read().decode()
        except (urllib.error.URLError, ConnectionError):
            threading.Event().wait(0.2)
    raise AssertionError("the server did not answer")


def test_sound_upload_finds_itself(server, tiny_index):
    url, _ = server
    _, source, samples = tiny_index
    path = f"sounds/{samples[2]['id']}.wav"
    with open(os.path.join(source, path), "rb") as f:
        status, page = _post(url, "query.wav", f.read(), target="sound")
    assert status == 200
    matches = Matches(page)
    assert not matches.error and list(matches.columns) == ["sound"]
    assert matches.columns["sound"][0][1] == path
    assert "+1.000" in page


def test_bad_uploads_are_messages_on_the_page(server):
    url, searcher = server
    status, page = _post(url, "notes.txt", b"a big red dog")
    assert status == 200 and "not an image or a sound" in Matches(page).error
    status, page = _post(url, "fake.png", b"not an image at all")
    assert status == 200 and "cannot decode image" in Matches(page).error
    status, page = _post(url, "broken.wav", b"RIFF\x00\x00")
    assert status == 200 and "sound" in Matches(page).error
    limit, searcher.max_upload_bytes = searcher.max_upload_bytes, 1000
    try:
        status, page = _post(url, "big.png", bytes(5000))
    finally:
        searcher.max_upload_bytes = limit
    assert status == 413 and "over the" in Matches(page).error
    status, page = _get(url + "/?q=" + urllib.parse.quote("qqzzx blorfv"))
    assert status == 200 and "vocabulary" in Matches(page.decode()).error
    assert _get(url + "/")[0] == 200  # still serving


def test_only_indexed_files_are_served(server, tiny_index):
    url, _ = server
    _, source, samples = tiny_index
    path = f"images/{samples[0]['id']}.png"
    status, data = _get(url + "/media?" + urllib.parse.urlencode({"m": "image", "path": path}))
    with open(os.path.join(source, path), "rb") as f:
        assert status == 200 and data == f.read()
    for m, p in (
        ("image", "../run/config.json"),
        ("image", "images/text.png"),
        ("text", "empty.txt"),
    ):
        assert _get(url + "/media?" + urllib.parse.urlencode({"m": m, "path": p}))[0] == 404
