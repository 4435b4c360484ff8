"""scripts/pack_cifar10.py: a tiny synthetic CIFAR-10, in both source layouts, survives pack and
unpack (record sizes, labels and their order exactly, pixels within JPEG error), and bad input or
an oversized pack stops with one line.

The script runs as the command line it is (a subprocess from the repository root), because that is
how it is used on the offline GPU machine.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backdoorlab.data.cifar import CIFAR10

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
RECORD = 3073


def run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "scripts/pack_cifar10.py", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def smooth_images(count: int, seed: int) -> np.ndarray:
    """uint8 (count, 32, 32, 3): 4 x 4 random colours upsampled bilinearly, so JPEG error stays small."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (count, 4, 4, 3), dtype=np.uint8)
    return np.stack([np.asarray(Image.fromarray(c).resize((32, 32), Image.BILINEAR)) for c in coarse])


def records(images: np.ndarray, labels: np.ndarray) -> bytes:
    planes = images.transpose(0, 3, 1, 2).reshape(len(labels), -1)
    return np.concatenate([labels.astype(np.uint8)[:, None], planes], axis=1).tobytes()


def read_records(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Labels and HWC images of a rebuilt file, read as the official format says."""
    raw = np.fromfile(path, dtype=np.uint8)
    assert raw.size % RECORD == 0
    rows = raw.reshape(-1, RECORD)
    return rows[:, 0], rows[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def make_binary(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """30 training images over the five official batch files (6 each) and 10 test images."""
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    train = smooth_images(30, 2), rng.integers(0, 10, 30)
    test = smooth_images(10, 3), rng.integers(0, 10, 10)
    for i in range(5):
        (folder / f"data_batch_{i + 1}.bin").write_bytes(records(train[0][6 * i:6 * i + 6], train[1][6 * i:6 * i + 6]))
    (folder / "test_batch.bin").write_bytes(records(*test))
    return {"train": train, "test": test}


def make_tree(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A class tree of PNGs with uneven classes (4 training images of the first two classes, 3 of the
    rest: 32 in all) and names that sort differently as text and as numbers; returns the images in
    the order the pack promises: classes round robin, files in natural name order."""
    expected = {}
    for split, counts, seed in (("train", [4, 4] + [3] * 8, 4), ("test", [1] * 10, 5)):
        images = smooth_images(sum(counts), seed)
        per_class, start = [], 0
        for label, (name, count) in enumerate(zip(CLASSES, counts)):
            folder = root / split / name
            folder.mkdir(parents=True)
            for k in range(count):
                Image.fromarray(images[start + k]).save(folder / f"{[2, 9, 10, 11][k]}.png")
            per_class.append([(images[start + k], label) for k in range(count)])
            start += count
        order = [items[k] for k in range(max(counts)) for items in per_class if k < len(items)]
        expected[split] = np.stack([i for i, _ in order]), np.array([label for _, label in order])
    return expected


def check_rebuilt(folder: Path, expected: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    train_images, train_labels = expected["train"]
    sizes = [len(part) for part in np.array_split(np.arange(len(train_labels)), 5)]
    parts = []
    for i, size in enumerate(sizes):
        path = folder / f"data_batch_{i + 1}.bin"
        assert path.stat().st_size == size * RECORD
        parts.append(read_records(path))
    test = read_records(folder / "test_batch.bin")
    assert (folder / "test_batch.bin").stat().st_size == len(expected["test"][1]) * RECORD
    for (labels, images), (want_images, want_labels) in (
            ((np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])), expected["train"]),
            (test, expected["test"])):
        assert labels.tolist() == want_labels.tolist()
        assert np.abs(images.astype(int) - want_images).mean() < 3
    assert (folder / "batches.meta.txt").read_text().split() == CLASSES


@pytest.mark.parametrize("layout", ["binary", "tree"])
def test_round_trip(tmp_path: Path, layout: str) -> None:
    src, pack, out = tmp_path / "src", tmp_path / "pack.tar", tmp_path / "out"
    expected = make_binary(src) if layout == "binary" else make_tree(src)
    packed = run("pack", src, pack, "--quality", 95)
    assert packed.returncode == 0, packed.stderr
    assert " MB" in packed.stdout
    unpacked = run("unpack", pack, out)
    assert unpacked.returncode == 0, unpacked.stderr
    assert "identical to the pack-time decode" in unpacked.stdout
    folder = out / "cifar-10-batches-bin"
    check_rebuilt(folder, expected)
    if layout == "tree":  # 32 training images: five files of 7, 7, 6, 6, 6 records
        assert [(folder / f"data_batch_{i}.bin").stat().st_size // RECORD for i in range(1, 6)] == [7, 7, 6, 6, 6]

    # the pipeline's own reader takes the rebuilt files as the official release
    pool = CIFAR10(CIFAR10.Config(root=str(out), download=False)).load()
    train_labels, test_labels = expected["train"][1], expected["test"][1]
    assert tuple(pool.data.images.shape) == (len(train_labels) + len(test_labels), 3, 32, 32)
    assert pool.data.labels.tolist() == train_labels.tolist() + test_labels.tolist()
    assert int(pool.official_test.sum()) == len(test_labels)


def test_refuses_a_pack_over_max_mb(tmp_path: Path) -> None:
    make_binary(tmp_path / "src")
    result = run("pack", tmp_path / "src", tmp_path / "pack.tar", "--max-mb", 0.001)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1 and "--max-mb" in result.stderr
    assert not (tmp_path / "pack.tar").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no temporary file left behind


def one_line_error(result: subprocess.CompletedProcess[str], names: str) -> None:
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and names in lines[0], result.stderr


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    make_binary(tmp_path / "src")
    pack = tmp_path / "pack.tar"
    assert run("pack", tmp_path / "src", pack).returncode == 0

    missing = tmp_path / "missing.tar"
    one_line_error(run("unpack", missing, tmp_path / "out"), str(missing))

    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(pack.read_bytes()[:pack.stat().st_size // 2])
    one_line_error(run("unpack", truncated, tmp_path / "out"), str(truncated))
    assert not (tmp_path / "out").exists()  # nothing written from a bad pack

    not_tar = tmp_path / "garbage.tar"
    not_tar.write_bytes(b"not a tar" * 100)
    one_line_error(run("unpack", not_tar, tmp_path / "out"), str(not_tar))

    short_batch = tmp_path / "short" / "cifar-10-batches-bin"
    short_batch.mkdir(parents=True)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        (short_batch / name).write_bytes((tmp_path / "src" / "cifar-10-batches-bin" / name).read_bytes())
    (short_batch / "data_batch_3.bin").write_bytes(b"\0" * 100)
    one_line_error(run("pack", tmp_path / "short", tmp_path / "p.tar"), str(short_batch / "data_batch_3.bin"))

    tree = tmp_path / "tree"
    make_tree(tree)
    (tree / "train" / "kitten").mkdir()
    one_line_error(run("pack", tree, tmp_path / "p.tar"), str(tree / "train" / "kitten"))
    assert not (tmp_path / "p.tar").exists()
