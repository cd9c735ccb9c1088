"""`clipag models download`: against a local server that speaks Zenodo's record API and HTTP ranges."""
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from clipag.models import download, registry
from clipag.cli.main import main
from clipag.errors import ClipagError
from clipag.models.registry import ModelSpec

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class FakeZenodo(BaseHTTPRequestHandler):
    """GET /api/records/7 (the record) and /records/7/files/w.pt (the file, with Range support)."""
    payload, record_checksum, cut_at, ranges_seen = PAYLOAD, None, None, []

    def do_GET(self):
        if self.path == "/api/records/7":
            checksum = self.record_checksum or "md5:" + hashlib.md5(self.payload).hexdigest()
            body = json.dumps({"files": [{"key": "w.pt", "size": len(PAYLOAD), "checksum": checksum}]}).encode()
            return self._send(200, body)
        if self.path != "/records/7/files/w.pt":
            return self._send(404, b"")
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].rstrip("-"))
            type(self).ranges_seen.append(start)
        body = self.payload[start:]
        if self.cut_at is not None:  # the connection drops part-way, once
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:self.cut_at])
            type(self).cut_at = None
            return
        self._send(206 if start else 200, body)

    def _send(self, code, body):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch, tmp_path):
    FakeZenodo.payload, FakeZenodo.record_checksum, FakeZenodo.cut_at, FakeZenodo.ranges_seen = PAYLOAD, None, None, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeZenodo)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{httpd.server_address[1]}"
    monkeypatch.setattr(download, "ZENODO_HOSTS", {host})
    monkeypatch.setenv("CLIPAG_HOME", str(tmp_path / "home"))
    spec = ModelSpec(name="fake-official", arch="clipag-tiny", description="test", filename="w.pt",
                     url=f"http://{host}/records/7/files/w.pt")
    monkeypatch.setitem(registry._REGISTRY, spec.name, spec)
    yield spec
    httpd.shutdown()


def test_download_checks_the_records_size_and_checksum_and_lands_atomically(server, capsys):
    assert main(["models", "download", "fake-official", "--quiet"]) == 0
    target = registry.spec_file(server)
    assert target.read_bytes() == PAYLOAD and not target.with_name("w.pt.part").exists()
    assert "checksum match" in capsys.readouterr().out
    assert main(["models", "download", "fake-official", "--quiet"]) == 0  # already there: checked, kept
    assert FakeZenodo.ranges_seen == []


def test_an_interrupted_download_resumes_where_it_stopped(server):
    FakeZenodo.cut_at = 300_000
    with pytest.raises(ClipagError, match="stopped at 300,000 bytes.*resume"):
        download.download_model("fake-official", progress=False)
    partial = registry.spec_file(server).with_name("w.pt.part")
    assert partial.stat().st_size == 300_000 and not registry.spec_file(server).exists()
    download.download_model("fake-official", progress=False)
    assert FakeZenodo.ranges_seen == [300_000]
    assert registry.spec_file(server).read_bytes() == PAYLOAD


def test_a_download_that_does_not_match_the_record_is_removed(server):
    FakeZenodo.record_checksum = "md5:" + "0" * 32
    with pytest.raises(ClipagError, match="does not match its publisher's record .*md5"):
        download.download_model("fake-official", progress=False)
    target = registry.spec_file(server)
    assert not target.exists() and not target.with_name("w.pt.part").exists()


def test_offline_is_one_line_and_names_what_to_do(server, monkeypatch, capsys):
    closed = ModelSpec(name="unreachable", arch="clipag-tiny", description="test", filename="x.pt",
                       url="http://127.0.0.1:9/records/7/files/x.pt", checksum="md5:" + "0" * 32)
    monkeypatch.setitem(registry._REGISTRY, closed.name, closed)
    assert main(["models", "download", "unreachable"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot reach 127.0.0.1:9" in err and "run the command again" in err


@pytest.mark.parametrize("name, message", [("clip-emoji", "ships with clipag"), ("clip-vit-b-32", "OpenCLIP downloads it"),
                                           ("nope", "unknown model")])
def test_models_without_a_download_say_why(name, message, capsys):
    assert main(["models", "download", name]) == 2
    assert message in capsys.readouterr().err


def test_the_official_weights_are_registered_with_their_zenodo_file():
    spec = registry.get_spec("clipag-vit-b-32")
    match = download._RECORD_FILE.match(spec.url)
    assert match and match.group(2) in download.ZENODO_HOSTS and match.group(4) == spec.filename
