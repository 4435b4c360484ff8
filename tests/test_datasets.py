"""The data-set registry's readers, each on small files written in its real format: an image-folder
tree (JPEG and PNG, nested, greyscale, a second tree), MNIST's IDX files, CIFAR-100's binary
release, SVHN's .mat files, STL-10's column-major binaries and Tiny-ImageNet's two layouts."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from backdoorlab.config import parse_params
from backdoorlab.data import DATASETS
from backdoorlab.data import image_folder as image_folder_module
from backdoorlab.errors import ConfigError, DataError
from backdoorlab.pipeline.checks import check_params, data_shape

from conftest import ROOT


def dataset(name: str, **options):
    cls = DATASETS.get(name, "data.dataset")
    return cls(cls.Config(**options))


def save_image(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


ANIMALS = ("cat", "dog", "emu", "fox", "gnu", "hen", "ibis", "jay", "koi", "lynx")


def colour_tree(root: Path, per_class: int = 3, side: int = 40, nested: str = "",
                classes: int = 3) -> dict[str, tuple[int, int, int]]:
    """Class folders of flat-coloured images (JPEG and PNG), each class its own colour."""
    colours = {name: (200 - 17 * i, 30 + 17 * i, 30 + 5 * i) for i, name in enumerate(ANIMALS[:classes])}
    for name, colour in colours.items():
        for i in range(per_class):
            suffix = ".jpg" if i % 2 else ".png"
            save_image(root / name / nested / f"{i}{suffix}", np.full((side, side + 8, 3), colour, dtype=np.uint8))
    return colours


def test_image_folder_reads_labels_in_sorted_class_order_and_resizes(tmp_path):
    colours = colour_tree(tmp_path / "tree", nested="images")  # Tiny-ImageNet keeps images one level down
    data = dataset("image_folder", root=str(tmp_path / "tree"), image_size=16, cache_dir=None)
    assert data.num_classes == 3 and data.image_shape == (3, 16, 16)
    pool = data.load().data
    assert pool.images.shape == (9, 3, 16, 16) and pool.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    for label, colour in enumerate(colours.values()):
        mean = pool.images[pool.labels == label].float().mean(dim=(0, 2, 3))
        assert torch.allclose(mean, torch.tensor(colour, dtype=torch.float), atol=4)  # JPEG is lossy


def test_image_folder_greyscale_and_a_separate_test_tree_is_the_official_test_part(tmp_path):
    colour_tree(tmp_path / "train")
    colour_tree(tmp_path / "test", per_class=1)
    loaded = dataset("image_folder", root=str(tmp_path / "train"), test_root=str(tmp_path / "test"),
                     image_size=8, channels=1, cache_dir=None).load()
    pool = loaded.data
    assert pool.images.shape == (12, 1, 8, 8) and torch.bincount(pool.labels).tolist() == [4, 4, 4]
    train, test = loaded.parts()
    assert len(train) == 9 and test.labels.tolist() == [0, 1, 2]
    assert dataset("image_folder", root=str(tmp_path / "train"), cache_dir=None).load().parts() is None


def test_image_folder_takes_trees_as_they_come(tmp_path):
    """Nested folders, upper-case suffixes, a symlinked class folder, macOS's hidden companions, and
    a test tree whose class folders were made in another order."""
    colours = colour_tree(tmp_path / "store", per_class=2)
    tree = tmp_path / "tree"
    (tree / "cat" / "deep" / "er").mkdir(parents=True)
    for i, path in enumerate(sorted((tmp_path / "store" / "cat").iterdir())):
        path.rename(tree / "cat" / "deep" / "er" / f"{i}{path.suffix.upper()}")  # .JPG, .PNG
    (tree / "cat" / "._0.JPG").write_bytes(b"AppleDouble")  # not an image: skipped, never decoded
    (tree / "cat" / ".DS_Store").write_bytes(b"junk")
    (tree / "dog").symlink_to(tmp_path / "store" / "dog", target_is_directory=True)
    (tree / "emu").symlink_to(tmp_path / "store" / "emu", target_is_directory=True)
    for name in ("emu", "cat", "dog"):  # created in another order than sorted
        save_image(tmp_path / "test" / name / "x.png", np.full((8, 8, 3), colours[name], dtype=np.uint8))
    loaded = dataset("image_folder", root=str(tree), test_root=str(tmp_path / "test"), image_size=8, cache_dir=None).load()
    assert loaded.data.labels.tolist() == [0, 0, 1, 1, 2, 2, 0, 1, 2]
    train, test = loaded.parts()
    for label, colour in enumerate(colours.values()):
        mean = test.images[test.labels == label].float().mean(dim=(0, 2, 3))
        assert torch.allclose(mean, torch.tensor(colour, dtype=torch.float), atol=4)


def test_image_folder_names_the_class_folders_the_two_trees_do_not_share(tmp_path):
    colour_tree(tmp_path / "train", per_class=1, classes=4)
    colour_tree(tmp_path / "test", per_class=1, classes=3)
    save_image(tmp_path / "test" / "zebu" / "0.png", np.zeros((8, 8, 3), dtype=np.uint8))
    options = dict(image_size=8, cache_dir=None)
    with pytest.raises(ConfigError, match=r"test: class folder\(s\) zebu are not in .*train"):
        dataset("image_folder", root=str(tmp_path / "train"), test_root=str(tmp_path / "test"), **options).load()
    (tmp_path / "test" / "zebu" / "0.png").unlink()
    (tmp_path / "test" / "zebu").rmdir()
    with pytest.raises(ConfigError, match=r"test: lacks class folder\(s\) fox that .*train has"):
        dataset("image_folder", root=str(tmp_path / "train"), test_root=str(tmp_path / "test"), **options).load()


def test_image_folder_decodes_once_and_a_changed_file_invalidates_the_cache(tmp_path, monkeypatch):
    colour_tree(tmp_path / "tree")
    options = dict(root=str(tmp_path / "tree"), image_size=8, cache_dir=str(tmp_path / "cache"))
    first = dataset("image_folder", **options).load().data
    decoded = []
    real = image_folder_module.decode_images
    monkeypatch.setattr(image_folder_module, "decode_images", lambda *a: decoded.append(1) or real(*a))
    again = dataset("image_folder", **options).load().data
    assert not decoded and torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    save_image(tmp_path / "tree" / "cat" / "0.png", np.zeros((40, 48, 3), dtype=np.uint8))
    changed = dataset("image_folder", **options).load().data
    assert decoded == [1] and changed.images[0].max() == 0  # the new file, not the stale tensors


def test_image_folder_decodes_in_worker_processes_like_in_one(tmp_path, monkeypatch):
    colour_tree(tmp_path / "tree")
    files, _ = image_folder_module.class_tree(tmp_path / "tree", ["cat", "dog", "emu"])
    monkeypatch.setattr(image_folder_module, "CHUNK", 2)  # 5 chunks over 2 processes
    serial = image_folder_module.decode_images(files, 8, 3, workers=1)
    assert torch.equal(image_folder_module.decode_images(files, 8, 3, workers=2), serial)
    (tmp_path / "tree" / "emu" / "1.jpg").write_bytes(b"truncated")
    with pytest.raises(DataError, match=r"emu/1.jpg: not a readable image"):  # raised in a worker
        image_folder_module.decode_images(files, 8, 3, workers=2)


def test_image_folder_errors_name_the_folder_or_file(tmp_path):
    with pytest.raises(DataError, match="nowhere: folder not found; put one sub-folder of images per class"):
        dataset("image_folder", root=str(tmp_path / "nowhere")).num_classes
    colour_tree(tmp_path / "tree")
    (tmp_path / "tree" / "dog" / "2.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"dog/2.png: not a readable image"):
        dataset("image_folder", root=str(tmp_path / "tree"), cache_dir=None).load()
    with pytest.raises(ConfigError, match="data.options.num_classes: 5 given, but .* has 3 class folders"):
        dataset("image_folder", root=str(tmp_path / "tree"), num_classes=5).load()
    (tmp_path / "tree" / "gnu").mkdir()
    with pytest.raises(DataError, match="gnu: no images"):
        dataset("image_folder", root=str(tmp_path / "tree"), cache_dir=None).load()


def test_image_folder_is_one_params_change_from_the_default(tmp_path):
    """The default params with data.dataset switched validate on a three-class tree: the default run
    reads no paradigm section; the paradigm block and a target the tree lacks each stop with one line."""
    import yaml

    colour_tree(tmp_path / "tree", per_class=1, classes=3)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"] = {**raw["data"], "dataset": "image_folder", "options": {"root": str(tmp_path / "tree")}}
    params = parse_params(raw)
    check_params(params)
    assert data_shape(params) == ((3, 32, 32), 3)
    with pytest.raises(ConfigError, match=r"^paradigms.transfer_data.task: a transfer task needs at least 4 classes"):
        check_params(params, ["default", "paradigms"])
    raw["attacks"]["badnets"] = {**raw["attacks"]["badnets"], "target": 5}
    with pytest.raises(ConfigError, match=r"^attacks.badnets.target: must be a class index in \[0, 2\], got 5"):
        check_params(parse_params(raw))


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_mnist_reads_idx_files_and_says_what_is_missing(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="MNIST files missing .*train-images-idx3-ubyte.gz.*download: true"):
        dataset("mnist", root=str(tmp_path)).load()
    import torchvision.datasets.utils as utils

    monkeypatch.setattr(utils, "download_url", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(DataError, match="could not download MNIST.*offline"):
        dataset("mnist", root=str(tmp_path), download=True).load()
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.full((3, 28, 28), 7))
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.array([1, 2, 3]))
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.full((1, 28, 28), 9))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([4]))
    loaded = dataset("mnist", root=str(tmp_path)).load()
    pool = loaded.data
    assert pool.images.shape == (4, 1, 28, 28) and pool.labels.tolist() == [1, 2, 3, 4]
    assert loaded.official_test.tolist() == [False, False, False, True]  # t10k is the official test part


@pytest.mark.parametrize("labels, expected", [("fine", [7, 99]), ("coarse", [3, 19])])
def test_cifar100_binary_reads_the_chosen_label_byte(tmp_path, labels, expected):
    folder = tmp_path / "cifar-100-binary"
    folder.mkdir()
    for name, (coarse, fine) in (("train.bin", (3, 7)), ("test.bin", (19, 99))):
        record = np.concatenate([[coarse, fine], np.full(3072, fine)]).astype(np.uint8)
        record.tofile(folder / name)
    data = dataset("cifar100", root=str(tmp_path), labels=labels)
    loaded = data.load()
    pool = loaded.data
    assert loaded.official_test.tolist() == [False, True]
    assert data.num_classes == {"fine": 100, "coarse": 20}[labels]
    assert pool.labels.tolist() == expected and pool.images.shape == (2, 3, 32, 32) and pool.images[1].max() == 99


def test_svhn_mat_files_map_digit_ten_to_class_zero(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    for name, labels in (("train_32x32.mat", [10, 1, 5]), ("test_32x32.mat", [9])):
        images = rng.integers(0, 256, (32, 32, 3, len(labels)), dtype=np.uint8)
        images[0, 1, 2, 0] = 255  # pixel (row 0, column 1) of channel 2 of the first image
        savemat(tmp_path / name, {"X": images, "y": np.array(labels).reshape(-1, 1)})
    loaded = dataset("svhn", root=str(tmp_path)).load()
    pool = loaded.data
    assert pool.labels.tolist() == [0, 1, 5, 9] and pool.images.shape == (4, 3, 32, 32)
    assert loaded.official_test.tolist() == [False, False, False, True]
    assert pool.images[0, 2, 0, 1] == 255
    (tmp_path / "test_32x32.mat").write_bytes(b"junk")
    with pytest.raises(DataError, match="test_32x32.mat: not an SVHN"):
        dataset("svhn", root=str(tmp_path)).load()


def test_stl10_binary_is_column_major_and_resizes(tmp_path):
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    image = np.zeros((3, 96, 96), dtype=np.uint8)
    image[0, 0, :] = 255  # the top row of the red channel, as the viewer sees it
    for split, label in (("train", 1), ("test", 10)):
        image.transpose(0, 2, 1).tofile(folder / f"{split}_X.bin")  # stored column-major
        np.array([label], dtype=np.uint8).tofile(folder / f"{split}_y.bin")
    loaded = dataset("stl10", root=str(tmp_path)).load()
    pool = loaded.data
    assert loaded.official_test.tolist() == [False, True]
    assert pool.labels.tolist() == [0, 9] and pool.images[0, 0, 0].min() == 255 and pool.images[0, 0, 1:].max() == 0
    small = dataset("stl10", root=str(tmp_path), image_size=32)
    assert small.image_shape == (3, 32, 32) and small.load().data.images.shape == (2, 3, 32, 32)


def test_tiny_imagenet_reads_the_train_tree_and_the_annotated_val_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(DATASETS.get("tiny_imagenet", "data.dataset"), "num_classes", 2)  # 2 wnids, not 200
    folder = tmp_path / "tiny-imagenet-200"
    for wnid, value in (("n01", 10), ("n02", 200)):
        save_image(folder / "train" / wnid / "images" / f"{wnid}_0.JPEG",
                   np.full((64, 64, 3), value, dtype=np.uint8))
    save_image(folder / "val" / "images" / "val_0.JPEG", np.full((64, 64, 3), 200, dtype=np.uint8))
    (folder / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn02\t0\t0\t63\t63\n")
    loaded = dataset("tiny_imagenet", root=str(tmp_path), cache_dir=None).load()
    pool = loaded.data
    assert pool.labels.tolist() == [0, 1, 1] and pool.images.shape == (3, 3, 64, 64)
    assert loaded.official_test.tolist() == [False, False, True]  # the annotated val folder
    assert abs(pool.images[2].float().mean().item() - 200) < 3
    (folder / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn99\n")
    with pytest.raises(DataError, match="val_annotations.txt:1"):
        dataset("tiny_imagenet", root=str(tmp_path), cache_dir=None).load()


def test_tiny_imagenet_missing_says_what_to_extract(tmp_path):
    with pytest.raises(DataError, match="extract tiny-imagenet-200.zip"):
        dataset("tiny_imagenet", root=str(tmp_path)).load()
