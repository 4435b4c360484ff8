"""What every file-backed data set shares: fetching its files, one clear error when they are
missing, and resizing to the size a params file declares.

Fetching works only with internet; offline, or with ``download: false``, a missing file stops
``prepare`` with one line naming the folder, the files it lacks and how to provide them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

from backdoorlab.errors import DataError


@dataclass(frozen=True)
class FilesConfig:
    """Where a data set's official files are, and whether to fetch them when they are not there.
    Each data set subclasses it with its own default ``root`` (``data/external/<name>``)."""

    root: str
    download: bool = False


def fetch_archive(config: FilesConfig, folder: Path, url: str, md5: str, what: str) -> None:
    """With ``download: true`` and ``folder`` absent, download the archive at ``url`` into
    ``config.root`` and extract it there (it holds ``folder``)."""
    if config.download and not folder.is_dir():
        download(url, Path(config.root), md5, what, extract=True)


def fetch_missing(config: FilesConfig, base_url: str, md5s: Mapping[str, str], names: Sequence[str], what: str) -> None:
    """With ``download: true``, download each of ``names`` that ``config.root`` lacks from ``base_url``."""
    if config.download:
        for name in names:
            if not (Path(config.root) / name).is_file():
                download(base_url + name, Path(config.root), md5s[name], what, extract=False)


def download(url: str, root: Path, md5: str, what: str, *, extract: bool) -> None:
    """Download ``url`` into ``root`` (and extract it if it is an archive); offline, say so in one line."""
    from torchvision.datasets.utils import download_and_extract_archive, download_url  # lazy: slow import

    try:
        if extract:
            download_and_extract_archive(url, str(root), md5=md5)
        else:
            download_url(url, str(root), md5=md5)
    except (OSError, RuntimeError, ValueError) as error:
        raise DataError(f"{root}: could not download {what} ({type(error).__name__}: {error}); "
                        f"this machine may be offline: copy the files there instead") from None


def require_files(folder: Path, names: Sequence[str], what: str, source: str) -> None:
    """Stop with one line if any of ``names`` is missing from ``folder``; ``source`` says what to put there."""
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise DataError(f"{folder}: {what} files missing ({', '.join(missing)}); set data.options.download: "
                        f"true on a machine with internet, or put {source} there")


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, C, size, size), antialiased bilinear, in chunks so a large
    set never needs more than a few hundred MB of floats. A no-op when the size already fits."""
    if images.shape[-2:] == (size, size):
        return images
    chunks = [F.interpolate(chunk.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
              .round_().clamp_(0, 255).to(torch.uint8) for chunk in images.split(4096)]
    return torch.cat(chunks)
