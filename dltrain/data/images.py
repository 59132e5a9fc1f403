"""Image datasets, samples shaped (C, H, W) with pixels scaled to [0, 1].

MNIST, Fashion-MNIST and CIFAR-10 are read by torchvision's own dataset classes from `root`
(downloaded there when `download: true` and the network allows); their official test splits are
the test set. `image_folder` reads the user's images, one sub-folder per class.
Everything is loaded into memory once: MNIST's 70,000 images take 220 MB as float32, CIFAR-10's 60,000 740 MB.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import Field

from dltrain.core.errors import DataError
from dltrain.data.registry import DATASETS, Arrays

register = DATASETS.register

MNIST_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
CIFAR10_FILES = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                 "batches.meta"]


def _open(cls, name: str, root: str, download: bool, where: str, files: list[str], source: str):
    """Both splits of a torchvision dataset; a missing or unreachable dataset becomes a DataError that
    says which files to put where."""
    try:
        return cls(root, train=True, download=download), cls(root, train=False, download=download)
    except (RuntimeError, OSError) as exc:  # torchvision: "Dataset not found" / "Error downloading ..."
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"data: {name} is not in {where} ({reason}).\n"
            f"  Put these files in {where}: {', '.join(files)}\n"
            f"  (from {source}), or set data.download: true on a machine that can reach the internet; "
            f"data.root (now `{root}`) says where the dataset folder lives.") from None


def unpack_gzipped(folder: Path, files: list[str]) -> None:
    """`name.gz` beside a missing `name` is unpacked next to it, as the official sites serve the
    IDX files gzipped. torchvision unpacks them only with download: true and only when their MD5
    sums match the official files; its reader still checks each file's IDX header."""
    import gzip
    import os
    import shutil

    for name in files:
        target, packed = folder / name, folder / f"{name}.gz"
        if target.exists() or not packed.is_file():
            continue
        partial = folder / f".{name}.unpacking"
        try:
            with gzip.open(packed, "rb") as source, partial.open("wb") as out:
                shutil.copyfileobj(source, out)
            os.replace(partial, target)  # a half-unpacked file is never taken for the real one
        except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
            partial.unlink(missing_ok=True)
            raise DataError(f"data: cannot unpack {packed}: {exc}") from None


def _mnist_like(cls_name: str, name: str, root: str, download: bool, url: str) -> Arrays:
    import torchvision.datasets as tvd
    cls = getattr(tvd, cls_name)
    where = Path(root) / cls_name / "raw"  # torchvision's layout: <root>/<Class>/raw/
    unpack_gzipped(where, MNIST_FILES)
    train, test = _open(cls, name, root, download, str(where), MNIST_FILES,
                        f"{url}; unpacked, or the .gz files as served there")
    x = train.data.numpy()[:, None].astype(np.float32) / 255.0  # (N, 28, 28) uint8 -> (N, 1, 28, 28) in [0, 1]
    x_test = test.data.numpy()[:, None].astype(np.float32) / 255.0
    return Arrays(x, train.targets.numpy().astype(np.int64), "classification", list(train.classes),
                  x_test, test.targets.numpy().astype(np.int64))


@register("mnist", description="70,000 28x28 handwritten digits, 10 classes (torchvision; official test split)")
def mnist(seed, /, *, root: str = "data", download: bool = False):
    return _mnist_like("MNIST", "mnist", root, download, "https://ossci-datasets.s3.amazonaws.com/mnist/")


@register("fashion_mnist", description="70,000 28x28 clothing images, 10 classes (torchvision; official test split)")
def fashion_mnist(seed, /, *, root: str = "data", download: bool = False):
    return _mnist_like("FashionMNIST", "fashion_mnist", root, download,
                       "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/")


@register("cifar10", description="60,000 32x32 colour images, 10 classes (torchvision; official test split)")
def cifar10(seed, /, *, root: str = "data", download: bool = False):
    import torchvision.datasets as tvd
    where = str(Path(root) / "cifar-10-batches-py")
    train, test = _open(tvd.CIFAR10, "cifar10", root, download, where, CIFAR10_FILES,
                        "cifar-10-python.tar.gz, https://www.cs.toronto.edu/~kriz/cifar.html; torchvision checks "
                        f"their MD5 sums; or put the .tar.gz itself in {root} with download: true, which unpacks it offline")

    def pixels(split):
        return split.data.transpose(0, 3, 1, 2).astype(np.float32) / 255.0  # (N, H, W, C) -> (N, C, H, W)

    return Arrays(pixels(train), np.asarray(train.targets, np.int64), "classification", list(train.classes),
                  pixels(test), np.asarray(test.targets, np.int64))


Size = Annotated[int, Field(ge=1, le=4096)]


@register("image_folder", description="your images: path/<class>/<image> (png, jpg, ...), one folder per class; "
                                      "size resizes, grayscale for 1 channel")
def image_folder(seed, /, *, path: str, size: Size | list[Size] | None = None, grayscale: bool = False):
    from torchvision.datasets import ImageFolder
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(f"data.path: image folder not found: {folder} (expected {folder}/<class name>/<images>)")
    try:
        found = ImageFolder(str(folder))  # finds the class folders and the image files, sorted
    except (FileNotFoundError, RuntimeError) as exc:
        raise DataError(f"data.path: {folder}: {exc} (expected {folder}/<class name>/<images>)") from None
    if isinstance(size, list) and len(size) != 2:
        raise DataError(f"data.size: expected one size or [height, width]; got {size}")
    height_width = None if size is None else (size, size) if isinstance(size, int) else tuple(size)
    images = [_read_image(file, grayscale, height_width) for file, _ in found.samples]
    shapes = {img.shape for img in images}
    if len(shapes) > 1:
        raise DataError(f"data: the images in {folder} have different sizes ({', '.join(map(str, sorted(shapes)[:4]))}"
                        f"{' ...' if len(shapes) > 4 else ''}); set data.size to resize them all")
    x = np.stack(images).astype(np.float32) / 255.0
    y = np.asarray(found.targets, np.int64)
    return Arrays(x, y, "classification", list(found.classes))


def _read_image(file: str, grayscale: bool, height_width):
    from PIL import Image
    with Image.open(file) as img:
        img = img.convert("L" if grayscale else "RGB")
        if height_width is not None:
            img = img.resize((height_width[1], height_width[0]), Image.BILINEAR)  # PIL takes (width, height)
        array = np.asarray(img, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)  # (C, H, W)
