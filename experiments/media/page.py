"""The local search page (`python -m experiments.serve`): standard-library HTTP, everything inline.

    GET  /?q=a+dog+barks&target=all&k=5   a sentence query (the page's form submits this)
    POST /                                an uploaded image or sound (multipart field "file")
    GET  /media?m=image&path=P            an indexed file, only if P is in the index

The run is restored and compiled on the first query, not at start-up. A bad upload (not an image or a
sound, over the size limit, unreadable) or a sentence of unknown words is a message on the page.
"""

from __future__ import annotations

import email.parser
import email.policy
import html
import mimetypes
import os
import tempfile
import threading
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from absl import logging

from alignment.streams import MODALITIES
from experiments.media import scan
from experiments.media.build import READ_ERRORS
from experiments.media.embedder import Embedder
from experiments.media.search import Index, Match

DEFAULT_MAX_UPLOAD_BYTES = 20 * 2**20
STYLE = """
body{font-family:sans-serif;margin:2em;max-width:70em;color:#222}
form{margin:.5em 0}input[type=text]{width:28em;padding:.3em}
.error{background:#fdd;border:1px solid #c66;padding:.5em}
.results{display:flex;gap:2em;flex-wrap:wrap}.col{flex:1;min-width:18em}
.match{border-bottom:1px solid #ddd;padding:.4em 0}.cos{font-family:monospace;color:#36c}
img{width:96px;height:96px;object-fit:cover;image-rendering:pixelated;display:block}
.path{color:#777;font-size:.8em}
"""


class Searcher:
    """The index and, from the first query on, the run that embeds queries (shared by the threads)."""

    def __init__(self, index: Index, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES):
        self.index = index
        self.max_upload_bytes = max_upload_bytes
        self._embedder: Embedder | None = None
        self._served: dict[str, set[str]] = {}  # each modality's indexed paths, the files served
        self._lock = threading.Lock()

    def embed(self, modality: str, source: str) -> object:
        with self._lock:
            if self._embedder is None:
                self._embedder = self.index.embedder()
            return self._embedder.embed_one(modality, source)

    def results(
        self, modality: str, source: str, target: str, top_k: int
    ) -> dict[str, list[Match]]:
        """{target modality: matches} for one query (target "all": each modality indexed)."""
        query = self.embed(modality, source)
        with self._lock:
            targets = [m for m in MODALITIES if self.index.size(m)] if target == "all" else [target]
            return {t: self.index.search(query, t, top_k) for t in targets}

    def upload_results(
        self, filename: str, data: bytes, target: str, top_k: int
    ) -> dict[str, list[Match]]:
        """The results for an uploaded file; ValueError for anything but a readable image or sound."""
        modality = scan.modality_of(filename)
        if modality not in ("image", "sound"):
            raise ValueError(
                f"{filename or 'the upload'} is not an image or a sound: use one of "
                + " ".join(scan.IMAGE_SUFFIXES + scan.SOUND_SUFFIXES)
            )
        suffix = os.path.splitext(filename)[1].lower()
        with tempfile.NamedTemporaryFile(suffix=suffix) as f:
            f.write(data)
            f.flush()
            return self.results(modality, f.name, target, top_k)

    def media_path(self, modality: str, path: str) -> str | None:
        """The file of an indexed image or sound, or None when `path` is not one."""
        if modality not in ("image", "sound"):
            return None
        with self._lock:
            if modality not in self._served:
                self._served[modality] = set(self.index.table(modality).paths.tolist())
            known = path in self._served[modality]
        return os.path.join(self.index.root, path) if known else None


def render(
    results: dict[str, list[Match]] | None = None,
    error: str = "",
    query: str = "",
    target: str = "all",
    top_k: int = 5,
    heading: str = "",
) -> str:
    """The whole page: the forms, an error message, and one column of matches per modality."""
    options = "".join(
        f'<option value="{t}"{" selected" if t == target else ""}>{t}</option>'
        for t in ("all", *MODALITIES)
    )
    controls = (
        f'<label>target <select name="target">{options}</select></label> '
        f'<label>top <input name="k" type="number" min="1" max="100" value="{top_k}"></label>'
    )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Search your media</title>",
        f"<style>{STYLE}</style></head><body><h1>Search your media</h1>",
        f'<form method="get" action="/"><input type="text" name="q" value="{html.escape(query)}" '
        f'placeholder="a sentence"> {controls} <button>Search</button></form>',
        '<form method="post" action="/" enctype="multipart/form-data">'
        f'<input type="file" name="file" accept="image/*,audio/*"> {controls} '
        "<button>Search with this file</button></form>",
    ]
    if error:
        parts.append(f'<p class="error" id="error">{html.escape(error)}</p>')
    if results is not None:
        parts.append(f"<h2>{html.escape(heading)}</h2><div class='results'>")
        for modality, matches in results.items():
            parts.append(f"<div class='col' id='{modality}'><h3>{modality}</h3>")
            parts.extend(_match(m) for m in matches)
            parts.append("</div>")
        parts.append("</div>")
    parts.append("</body></html>")
    return "".join(parts)


def _match(match: Match) -> str:
    src = "/media?" + urllib.parse.urlencode({"m": match.modality, "path": match.path})
    media = ""
    if match.modality == "image":
        media = f'<img src="{html.escape(src)}" alt="">'
    elif match.modality == "sound":
        media = f'<audio controls preload="none" src="{html.escape(src)}"></audio>'
    return (
        f'<div class="match"><span class="cos">{match.rank}. {match.cosine:+.3f}</span> {media}'
        f'<div class="caption">{html.escape(match.caption)}</div>'
        f'<div class="path">{html.escape(match.path)}</div></div>'
    )


class Handler(BaseHTTPRequestHandler):
    """GET and POST of the page, GET of indexed media (the server's `searcher` answers)."""

    server: SearchServer

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        params = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/media":
            self._media(params.get("m", ""), params.get("path", ""))
        elif url.path == "/":
            self._search(params, None)
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        limit = self.server.searcher.max_upload_bytes
        if length > limit:
            self.close_connection = True  # the body is left unread
            error = f"the upload is {length / 2**20:.1f} MB, over the {limit / 2**20:.0f} MB limit"
            self._page(render(error=error), HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return
        fields, upload = _multipart(self.headers.get("Content-Type", ""), self.rfile.read(length))
        self._search(fields, upload)

    def _search(self, params: dict[str, str], upload: tuple[str, bytes] | None) -> None:
        query, target = params.get("q", "").strip(), params.get("target", "all")
        try:
            top_k = max(1, min(100, int(params.get("k") or 5)))
        except ValueError:
            top_k = 5
        if target not in ("all", *MODALITIES):
            target = "all"
        if upload is None and not query:
            self._page(render(target=target, top_k=top_k))
            return
        searcher = self.server.searcher
        try:
            if upload is not None:
                results = searcher.upload_results(upload[0], upload[1], target, top_k)
                heading = f"matches of {upload[0]}"
            else:
                results = searcher.results("text", query, target, top_k)
                heading = f"matches of “{query}”"
        except READ_ERRORS as err:
            self._page(render(error=str(err), query=query, target=target, top_k=top_k))
            return
        self._page(render(results, "", query, target, top_k, heading))

    def _media(self, modality: str, path: str) -> None:
        full = self.server.searcher.media_path(modality, path)
        if full is None or not os.path.isfile(full):
            self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not an indexed file")
            return
        with open(full, "rb") as f:
            data = f.read()
        self._send(HTTPStatus.OK, mimetypes.guess_type(full)[0] or "application/octet-stream", data)

    def _page(self, text: str, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(status, "text/html; charset=utf-8", text.encode("utf-8"))

    def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        logging.info("serve: " + format, *args)


def _multipart(content_type: str, body: bytes) -> tuple[dict[str, str], tuple[str, bytes] | None]:
    """A multipart/form-data body -> ({field: value}, (file name, bytes) of field "file" or None)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields: dict[str, str] = {}
    upload = None
    if not message.is_multipart():
        return fields, None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        if name == "file":
            if data:
                upload = (part.get_filename() or "", data)
        elif name:
            fields[str(name)] = data.decode("utf-8", "replace")
    return fields, upload


class SearchServer(ThreadingHTTPServer):
    """An HTTP server whose handlers answer from one Searcher."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], searcher: Searcher):
        super().__init__(address, Handler)
        self.searcher = searcher
