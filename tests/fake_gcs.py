"""A Google Cloud Storage in this process for tests: gcp-storage-emulator behind a proxy through which
every GCS client of the project reaches it, so gs:// paths are real GCS API calls, offline.

TensorFlow's GCS filesystem (epath's gs:// backend, TFDS, tf.data) talks only to https://www.googleapis.com
and https://storage.googleapis.com, so the proxy answers CONNECT for those two hosts with a certificate
of a throwaway CA (CURL_CA_BUNDLE) and forwards the requests inside; tensorstore (orbax's arrays) is sent
to the proxy by TENSORSTORE_GCS_HTTP_URL and google-cloud-storage by STORAGE_EMULATOR_HOST.
GOOGLE_AUTH_TOKEN_FOR_TESTING makes TensorFlow and tensorstore skip Google's auth (google-cloud-storage
skips it for an emulator).

The proxy answers `Expect: 100-continue` itself (the emulator does not: curl would wait a second per
upload) and sends each request on as one plain request with its whole body (the emulator reads
Content-Length before Transfer-Encoding, and curl sends both on resumable uploads). Two gaps of the
emulator are filled below: empty uploads, and generations on downloads. It still ignores preconditions
on uploads (ifGenerationMatch), so a test here cannot see a lost race between two writers.
"""

from __future__ import annotations

import datetime
import http.client
import http.server
import logging
import os
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from gcp_storage_emulator import server as emulator
from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator.handlers import objects

GCS_HOSTS = ("www.googleapis.com", "storage.googleapis.com")
# Headers about one hop, not the request: the proxy sets its own.
_HOP_HEADERS = {
    "connection",
    "proxy-connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "expect",
}


def _empty_media_uploads_are_empty_objects() -> None:
    """The emulator reads an empty upload body as None and fails on it; GCS makes an empty object
    (TensorFlow's makedirs writes one per folder)."""
    read = emulator._read_data

    def read_data(handler, query):
        data = read(handler, query)
        return b"" if data is None and query.get("uploadType") == ["media"] else data

    emulator._read_data = read_data


def _downloads_carry_generations() -> None:
    """GCS answers a media download with the object's generation (x-goog-generation) and honours
    ifGenerationMatch / ifGenerationNotMatch on it (412 / 304); tensorstore's conditional reads of
    orbax's OCDBT manifests rely on both, which the emulator lacks."""
    download = objects.download

    def conditional_download(request, response, storage, *args, **kwargs):
        try:
            obj = storage.get_file_obj(request.params["bucket_name"], request.params["object_id"])
        except NotFound:
            return download(request, response, storage, *args, **kwargs)
        generation = str(obj["generation"])
        if request.query.get("ifGenerationMatch", [generation])[0] != generation:
            response.status = HTTPStatus.PRECONDITION_FAILED
        elif request.query.get("ifGenerationNotMatch", [None])[0] == generation:
            response.status = HTTPStatus.NOT_MODIFIED
        else:
            download(request, response, storage, *args, **kwargs)
        response["x-goog-generation"] = generation
        response["x-goog-metageneration"] = str(obj["metageneration"])

    objects.download = conditional_download  # the JSON API's ?alt=media calls it by this name
    emulator.HANDLERS = tuple(
        (regex, {m: conditional_download if f is download else f for m, f in handlers.items()})
        for regex, handlers in emulator.HANDLERS
    )


_empty_media_uploads_are_empty_objects()
_downloads_carry_generations()
# The emulator logs every missing object as an error; a miss is routine (each exists() check).
logging.getLogger("gcp_storage_emulator.storage").setLevel(logging.CRITICAL)


def _certificates(folder: str) -> tuple[str, str, str]:
    """(CA certificate, server certificate for GCS_HOSTS, its key): PEM files written to `folder`."""
    now = datetime.datetime.now(datetime.UTC)
    valid = (now - datetime.timedelta(days=1), now + datetime.timedelta(days=1))

    def certificate(subject, issuer, public_key, signing_key, extension):
        builder = x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
        builder = builder.public_key(public_key).serial_number(x509.random_serial_number())
        builder = builder.not_valid_before(valid[0]).not_valid_after(valid[1])
        return builder.add_extension(extension, critical=False).sign(signing_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake gcs test CA")])
    ca = certificate(
        ca_name, ca_name, ca_key.public_key(), ca_key, x509.BasicConstraints(True, None)
    )
    host_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, GCS_HOSTS[0])])
    names = x509.SubjectAlternativeName([x509.DNSName(host) for host in GCS_HOSTS])
    leaf = certificate(host_name, ca_name, key.public_key(), ca_key, names)
    files = tuple(os.path.join(folder, name) for name in ("ca.pem", "host.pem", "host-key.pem"))
    pem = serialization.Encoding.PEM
    contents = (
        ca.public_bytes(pem),
        leaf.public_bytes(pem),
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    for path, content in zip(files, contents, strict=True):
        with open(path, "wb") as f:
            f.write(content)
    return files  # type: ignore[return-value]


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and `100 Continue` answered at once
    # Headers and body go out as separate writes: without this, each response waits out a delayed ACK.
    disable_nagle_algorithm = True
    server: _ProxyServer

    def do_CONNECT(self) -> None:
        if self.path.split(":")[0] not in GCS_HOSTS:
            self.send_error(403, "only the GCS hosts are served")
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.connection = self.server.tls.wrap_socket(self.connection, server_side=True)
        self.rfile = self.connection.makefile("rb", self.rbufsize)
        self.wfile = socketserver._SocketWriter(self.connection)  # type: ignore[attr-defined]

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _forward(self) -> None:
        target = urlsplit(self.path)
        if target.hostname and target.hostname not in (*GCS_HOSTS, "127.0.0.1", "localhost"):
            self.send_error(403, "only the GCS hosts are served")
            return
        path = target.path + (f"?{target.query}" if target.query else "")
        body = self._body()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
        upstream = http.client.HTTPConnection(*self.server.emulator, timeout=60)
        try:
            upstream.request(self.command, path, body, headers)
            response = upstream.getresponse()
            content = response.read()
        finally:
            upstream.close()
        self.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in _HOP_HEADERS:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward

    def log_message(self, format, *args) -> None:
        del format, args


class _ProxyServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, emulator_address: tuple[str, int], tls: ssl.SSLContext):
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.emulator = emulator_address
        self.tls = tls


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def fake_gcs(folder: str, bucket: str = "bucket") -> Iterator[dict[str, str]]:
    """Serves an empty in-memory GCS holding `bucket` while the block runs; yields the environment
    variables that send TensorFlow, epath, TFDS and tensorstore (orbax) to it. `folder` receives the
    certificates."""
    port = _free_port()
    storage = emulator.create_server("127.0.0.1", port, in_memory=True, default_bucket=bucket)
    storage.start()
    ca, host_cert, host_key = _certificates(folder)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(host_cert, host_key)
    tls.set_alpn_protocols(["http/1.1"])
    proxy = _ProxyServer(("127.0.0.1", port), tls)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{proxy.server_address[1]}"
    try:
        yield {
            # curl reads http_proxy in lower case only; the resumable upload URLs the emulator hands
            # out are http://www.googleapis.com/...
            "http_proxy": url,
            "https_proxy": url,
            "HTTPS_PROXY": url,
            "no_proxy": "127.0.0.1,localhost",
            "NO_PROXY": "127.0.0.1,localhost",
            "CURL_CA_BUNDLE": ca,
            "TENSORSTORE_GCS_HTTP_URL": url,
            # google-cloud-storage: orbax asks it whether a bucket has a hierarchical namespace.
            "STORAGE_EMULATOR_HOST": url,
            "GOOGLE_AUTH_TOKEN_FOR_TESTING": "fake-gcs-token",
        }
    finally:
        proxy.shutdown()
        proxy.server_close()
        storage.stop()
