"""CIFAR download: one-line failures, Range resume, checksum, progress, ``nas --version``.

Every URL points at 127.0.0.1: a closed port, or a ``http.server`` in a thread that serves a
small archive in torchvision's CIFAR format and can fail, truncate, ignore ``Range`` or lie.
"""
from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import pickle
import re
import socket
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.errors import UsageError
from nas.trial import download
from nas.trial.datasets import load_dataset

CIFAR10 = download.CIFAR_ARCHIVES["cifar10"]
IMAGES_PER_BATCH = 4


# ---------------------------------------------------------------------------- a fake CIFAR-10


def _pickled(obj: object) -> bytes:
    return pickle.dumps(obj, protocol=2)


def _fake_cifar10_files(seed: int = 0) -> dict[str, bytes]:
    """Member name -> bytes in the pickle format torchvision reads; random pixels, so gzip cannot shrink them."""
    rng = np.random.default_rng(seed)
    files = {}
    for name in CIFAR10.members:
        if name == "batches.meta":
            files[name] = _pickled({"label_names": [f"class{i}" for i in range(10)]})
        else:
            files[name] = _pickled({"data": rng.integers(0, 256, (IMAGES_PER_BATCH, 3072), dtype=np.uint8),
                                    "labels": rng.integers(0, 10, IMAGES_PER_BATCH).tolist()})
    return files


def _tar_gz(folder: str, files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def fake_files() -> dict[str, bytes]:
    return _fake_cifar10_files()


@pytest.fixture(scope="module")
def fake_archive(fake_files) -> bytes:
    return _tar_gz(CIFAR10.folder, fake_files)


@pytest.fixture
def fake_md5(monkeypatch, fake_archive, fake_files) -> str:
    """Make the fake archive the one the downloader (and torchvision's per-file checks) expect."""
    from torchvision.datasets import CIFAR10 as TorchvisionCifar10

    md5 = hashlib.md5(fake_archive).hexdigest()
    monkeypatch.setitem(download.CIFAR_ARCHIVES, "cifar10", dataclasses.replace(CIFAR10, md5=md5))
    file_md5 = {name: hashlib.md5(data).hexdigest() for name, data in fake_files.items()}
    monkeypatch.setattr(TorchvisionCifar10, "train_list",
                        [[name, file_md5[name]] for name, _ in TorchvisionCifar10.train_list])
    monkeypatch.setattr(TorchvisionCifar10, "test_list",
                        [[name, file_md5[name]] for name, _ in TorchvisionCifar10.test_list])
    monkeypatch.setattr(TorchvisionCifar10, "meta", {**TorchvisionCifar10.meta, "md5": file_md5["batches.meta"]})
    return md5


# ---------------------------------------------------------------------------- a local server


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files``; ``server.mode`` picks a failure: ok, status, truncate, no_range."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        if server.mode == "status":
            self.send_error(server.status)
            return
        body = server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        wanted = self.headers.get("Range")
        if wanted and server.mode != "no_range":
            start = int(re.fullmatch(r"bytes=(\d+)-", wanted).group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        sent = body[start:]
        if server.mode == "truncate":
            sent = sent[:server.truncate_at]
        self.wfile.write(sent)
        server.bytes_sent += len(sent)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(fake_archive):
    """A loopback HTTP server holding the fake archive at /cifar/<filename>; records every request."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files = {f"/cifar/{CIFAR10.filename}": fake_archive}
    httpd.mode, httpd.status, httpd.truncate_at = "ok", 404, 0
    httpd.requests, httpd.bytes_sent = [], 0
    httpd.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/cifar/"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def point_at(monkeypatch):
    def point(base_url: str) -> str:
        monkeypatch.setenv(download.URL_ENV_VAR, base_url)
        return base_url.rstrip("/") + "/" + CIFAR10.filename
    return point


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/cifar/"


def _fetch(root: Path, stream: io.StringIO | None = None) -> None:
    download.prepare_cifar("cifar10", root, download=True, progress_stream=stream or io.StringIO())


def _assert_one_line_with_advice(message: str, url: str, root: Path) -> None:
    assert "\n" not in message
    assert message.startswith("cifar10: ")
    assert url in message
    assert f"{CIFAR10.filename} (MD5 " in message and f"{CIFAR10.folder}/ (data_batch_1" in message
    assert str(root) in message and "--data-dir" in message


def _nothing_trusted_left(root: Path) -> bool:
    return not (root / CIFAR10.filename).exists() and not (root / CIFAR10.folder).exists()


# ---------------------------------------------------------------------------- failures


def test_constants_match_torchvisions_published_archive():
    from torchvision.datasets import CIFAR10 as TorchvisionCifar10, CIFAR100 as TorchvisionCifar100

    for ours, theirs in ((download.CIFAR_ARCHIVES["cifar10"], TorchvisionCifar10),
                         (download.CIFAR_ARCHIVES["cifar100"], TorchvisionCifar100)):
        assert download.CIFAR_BASE_URL + ours.filename == theirs.url
        assert (ours.filename, ours.md5, ours.folder) == (theirs.filename, theirs.tgz_md5, theirs.base_folder)
        expected = {name for name, _ in theirs.train_list + theirs.test_list} | {theirs.meta["filename"]}
        assert set(ours.members) == expected


def test_closed_port_is_one_line_usage_error(tmp_path, point_at):
    url = point_at(_closed_port_url())
    with pytest.raises(UsageError) as caught:
        _fetch(tmp_path)
    _assert_one_line_with_advice(str(caught.value), url, tmp_path)
    assert "Connection refused" in str(caught.value)
    assert _nothing_trusted_left(tmp_path) and not list(tmp_path.glob("*.part"))


def test_dns_failure_names_the_resolver_error(tmp_path, point_at, monkeypatch):
    def no_resolver(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_resolver)  # urllib resolves through it: nothing leaves
    url = point_at("http://cifar-mirror.invalid/cifar/")
    with pytest.raises(UsageError, match="Name or service not known") as caught:
        _fetch(tmp_path)
    _assert_one_line_with_advice(str(caught.value), url, tmp_path)
    assert _nothing_trusted_left(tmp_path)


@pytest.mark.parametrize("status", [404, 503])
def test_http_error_names_the_status(tmp_path, point_at, server, status):
    server.mode, server.status = "status", status
    url = point_at(server.base_url)
    with pytest.raises(UsageError, match=f"HTTP {status} ") as caught:
        _fetch(tmp_path)
    _assert_one_line_with_advice(str(caught.value), url, tmp_path)
    assert _nothing_trusted_left(tmp_path)


def test_wrong_file_fails_the_checksum_and_is_deleted(tmp_path, point_at, server, fake_md5):
    server.files[f"/cifar/{CIFAR10.filename}"] = b"<html>captive portal</html>"
    url = point_at(server.base_url)
    with pytest.raises(UsageError, match=f"has MD5 [0-9a-f]{{32}}, expected {fake_md5} \\(deleted\\)") as caught:
        _fetch(tmp_path)
    _assert_one_line_with_advice(str(caught.value), url, tmp_path)
    assert _nothing_trusted_left(tmp_path) and not list(tmp_path.glob("*.part"))


def test_truncated_download_is_kept_as_part_and_resumed_with_range(tmp_path, point_at, server, fake_archive,
                                                                   fake_md5):
    server.mode, server.truncate_at = "truncate", len(fake_archive) // 3
    url = point_at(server.base_url)
    with pytest.raises(UsageError, match="connection closed with .* still to come.*resume") as caught:
        _fetch(tmp_path)
    _assert_one_line_with_advice(str(caught.value), url, tmp_path)
    part = tmp_path / (CIFAR10.filename + ".part")
    assert part.read_bytes() == fake_archive[:server.truncate_at]
    assert _nothing_trusted_left(tmp_path)

    server.mode, server.bytes_sent = "ok", 0  # the network is back: rerun
    _fetch(tmp_path)
    assert server.requests[-1][1] == f"bytes={server.truncate_at}-"
    assert server.bytes_sent == len(fake_archive) - server.truncate_at
    assert (tmp_path / CIFAR10.filename).read_bytes() == fake_archive and not part.exists()
    split = load_dataset("cifar10", 8, data_dir=tmp_path)  # torchvision reads the unpacked files
    assert (len(split.train), len(split.val), split.num_classes) == (5 * IMAGES_PER_BATCH, IMAGES_PER_BATCH, 10)
    image, label = split.val[0]
    assert image.shape == (3, 8, 8) and isinstance(label, int)


def test_server_ignoring_range_restarts_from_zero(tmp_path, point_at, server, fake_archive, fake_md5):
    server.mode = "no_range"
    point_at(server.base_url)
    (tmp_path / (CIFAR10.filename + ".part")).write_bytes(fake_archive[:100])
    _fetch(tmp_path)
    assert server.requests == [(f"/cifar/{CIFAR10.filename}", "bytes=100-")]
    assert (tmp_path / CIFAR10.filename).read_bytes() == fake_archive


def test_stale_part_from_another_file_is_refetched_whole(tmp_path, point_at, server, fake_archive, fake_md5):
    point_at(server.base_url)
    (tmp_path / (CIFAR10.filename + ".part")).write_bytes(b"x" * 100)
    _fetch(tmp_path)
    assert [rng for _, rng in server.requests] == ["bytes=100-", None]
    assert (tmp_path / CIFAR10.filename).read_bytes() == fake_archive


def test_complete_part_is_verified_without_refetching(tmp_path, point_at, server, fake_archive, fake_md5):
    point_at(server.base_url)
    (tmp_path / (CIFAR10.filename + ".part")).write_bytes(fake_archive)
    _fetch(tmp_path)  # the server answers 416: nothing after the end
    assert server.bytes_sent == 0 and (tmp_path / CIFAR10.folder / "test_batch").is_file()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full to simulate a full disk")
def test_full_disk_is_one_line_usage_error(tmp_path, point_at, server, fake_md5):
    url = point_at(server.base_url)
    (tmp_path / (CIFAR10.filename + ".part")).symlink_to("/dev/full")  # every write: ENOSPC
    with pytest.raises(UsageError, match="No space left on device") as caught:
        _fetch(tmp_path)
    _assert_one_line_with_advice(str(caught.value), url, tmp_path)
    assert _nothing_trusted_left(tmp_path)


def test_incomplete_unpacked_folder_is_reported(tmp_path):
    (tmp_path / CIFAR10.folder).mkdir()
    (tmp_path / CIFAR10.folder / "data_batch_1").write_bytes(b"")
    with pytest.raises(UsageError, match="incomplete \\(missing data_batch_2, .*batches.meta\\)"):
        _fetch(tmp_path)


def test_archive_put_by_hand_is_unpacked_without_network(tmp_path, point_at, fake_archive, fake_md5):
    point_at(_closed_port_url())
    (tmp_path / CIFAR10.filename).write_bytes(fake_archive)
    split = load_dataset("cifar10", 8, data_dir=tmp_path, download=False)
    assert len(split.train) == 5 * IMAGES_PER_BATCH
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch directory left


def test_missing_cifar_without_download_names_the_layout(tmp_path):
    with pytest.raises(ValueError, match="--download.*cifar-10-python.tar.gz.*cifar-10-batches-py/.*--data-dir"):
        load_dataset("cifar10", 32, data_dir=tmp_path)


# ---------------------------------------------------------------------------- progress


def test_progress_reports_bytes_total_and_rate():
    now = [0.0]
    stream = io.StringIO()
    progress = download.DownloadProgress("cifar10", stream, start_bytes=1024, total=4 * 2**20,
                                         clock=lambda: now[0])
    now[0] = 2.0
    progress.update(1024 + 2 * 2**20)
    assert stream.getvalue() == ""  # not a terminal: a line every 5 s
    now[0] = 6.0
    progress.update(1024 + 3 * 2**20)
    progress.finish()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "cifar10: 3.0 MiB / 4.0 MiB (75%) at 512.0 KiB/s, resumed at 1.0 KiB"
    assert len(lines) == 2


def test_download_prints_progress_to_the_given_stream(tmp_path, point_at, server, fake_archive, fake_md5):
    point_at(server.base_url)
    stream = io.StringIO()
    _fetch(tmp_path, stream)
    size = f"{len(fake_archive) / 1024:.1f} KiB"
    assert re.fullmatch(rf"cifar10: {re.escape(size)} / {re.escape(size)} \(100%\) at [0-9.]+ [KMG]?i?B/s\n",
                        stream.getvalue())


# ---------------------------------------------------------------------------- CLI


def test_cli_download_failure_exits_2_with_one_line(tmp_path, point_at, capsys):
    from nas.cli import main

    url = point_at(_closed_port_url())
    code = main(["search", "--space", "hybrid_metaformer", "--budget", "1cpu-h", "--dataset", "cifar10",
                 "--download", "--data-dir", str(tmp_path), "--db", f"sqlite:///{tmp_path / 'nas.db'}"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: cifar10: download from ") and err.count("\n") == 1
    _assert_one_line_with_advice(err.strip()[len("error: "):], url, tmp_path)


def test_version_prints_the_installed_version(capsys):
    from importlib.metadata import version

    import nas
    from nas.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"nas {version('mixer-nas')}\n"
    assert version("mixer-nas") == nas.__version__  # pyproject and the package agree


def test_version_falls_back_to_the_package_attribute(capsys, monkeypatch):
    import importlib.metadata

    import nas
    from nas.cli import main

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    monkeypatch.setattr(nas, "__version__", "9.9.9-tree")
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out == "nas 9.9.9-tree\n"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without GPUs")
def test_gpu_budget_without_gpus_is_refused_before_downloading(tmp_path, point_at, server, capsys):
    from nas.cli import main

    server.mode, server.status = "status", 404  # if contacted, fail fast instead of starting Ray
    point_at(server.base_url)
    code = main(["search", "--space", "hybrid_metaformer", "--budget", "1gpu-h", "--dataset", "cifar10",
                 "--download", "--data-dir", str(tmp_path), "--db", f"sqlite:///{tmp_path / 'nas.db'}"])
    err = capsys.readouterr().err
    assert server.requests == []
    assert code == 2 and "gpu" in err.lower()
