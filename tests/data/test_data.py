"""The image folder: formats, modes, EXIF, broken files, class names, and the stratified split."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from study.config import SplitConfig
from study.data.images import decode_folder, decode_image, load_splits, make_dataset, split_indices
from study.errors import DataError
from tests.conftest import write_class_images


def solid(mode: str, size=(30, 20)) -> Image.Image:
    """A small image in `mode` whose RGB conversion is reddish."""
    return Image.new("RGB", size, (200, 30, 30)).convert(mode)


@pytest.mark.parametrize("suffix, fmt", [
    ("jpg", "JPEG"), ("jpeg", "JPEG"), ("png", "PNG"), ("bmp", "BMP"), ("gif", "GIF"), ("webp", "WEBP"),
])
def test_every_format_decodes_to_square_rgb(tmp_path, suffix, fmt):
    path = tmp_path / f"image.{suffix}"
    solid("RGB").save(path, fmt)
    array = decode_image(path, 24)
    assert array.shape == (24, 24, 3) and array.dtype == np.uint8
    assert array[..., 0].mean() > 150 and array[..., 1].mean() < 80


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "LA"])
def test_every_mode_becomes_rgb(tmp_path, mode):
    path = tmp_path / f"image.{'jpg' if mode == 'CMYK' else 'png'}"
    solid(mode).save(path)
    array = decode_image(path, 16)
    assert array.shape == (16, 16, 3)
    if mode != "L" and mode != "LA":
        assert array[..., 0].mean() > 150  # colour kept
    else:
        assert np.ptp(array, axis=2).max() == 0  # grey stays grey


def test_transparent_pixels_become_white(tmp_path):
    image = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    image.save(tmp_path / "clear.png")
    assert decode_image(tmp_path / "clear.png", 8).min() == 255


def test_exif_orientation_is_applied(tmp_path):
    # Stored 40 wide x 20 high, left half red; orientation 6 means "rotate 90 degrees clockwise".
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    array = decode_image(tmp_path / "rotated.jpg", 40)
    # After rotating clockwise the red half is on top, not on the left.
    assert array[:15, :, 0].mean() > 200 and array[25:, :, 0].mean() < 60


def test_corrupt_files_are_skipped_with_one_warning_each_and_counted(tmp_path):
    root = write_class_images(tmp_path / "images", {"a": 3, "b": 3})
    (root / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "b" / "empty.png").write_bytes(b"")
    warnings = []
    decoded = decode_folder(root, 16, warn=warnings.append)
    assert len(decoded.labels) == 6
    assert len(decoded.skipped) == 2
    assert len(warnings) == 2
    assert any("broken.jpg" in line for line in warnings) and any("empty.png" in line for line in warnings)
    assert all("\n" not in line for line in warnings)


def test_non_image_and_hidden_files_are_ignored(tmp_path):
    root = write_class_images(tmp_path / "images", {"a": 2, "b": 2})
    (root / "a" / "notes.txt").write_text("labels were checked by hand")
    (root / "a" / ".DS_Store").write_bytes(b"\x00\x01")
    (root / ".cache").mkdir()
    warnings = []
    decoded = decode_folder(root, 16, warn=warnings.append)
    assert decoded.class_names == ["a", "b"] and len(decoded.labels) == 4 and not warnings


def test_korean_class_names_survive(tmp_path):
    root = write_class_images(tmp_path / "images", {"비빔밥": 7, "김치찌개": 7, "불고기": 7})
    data = load_splits(root, 16, SplitConfig(), seed=0)
    assert sorted(data.class_names) == sorted(["비빔밥", "김치찌개", "불고기"])
    assert set(np.unique(data.y["train"])) == {0, 1, 2}


def test_split_is_stratified_and_sized_by_the_fractions():
    labels = np.repeat(np.arange(3), [20, 40, 100])
    parts = split_indices(labels, 3, SplitConfig(0.15, 0.15), seed=0)
    assert sum(len(p) for p in parts.values()) == 160
    assert len(set(np.concatenate(list(parts.values())))) == 160  # disjoint
    assert np.bincount(labels[parts["val"]]).tolist() == [3, 6, 15]
    assert np.bincount(labels[parts["test"]]).tolist() == [3, 6, 15]


def test_split_is_deterministic_for_a_seed_and_changes_with_it():
    labels = np.repeat(np.arange(2), 50)
    first = split_indices(labels, 2, SplitConfig(), seed=3)
    again = split_indices(labels, 2, SplitConfig(), seed=3)
    other = split_indices(labels, 2, SplitConfig(), seed=4)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["val"], other["val"])


def test_the_fractions_are_configurable():
    labels = np.repeat(np.arange(2), 100)
    parts = split_indices(labels, 2, SplitConfig(0.3, 0.1), seed=0)
    assert (len(parts["train"]), len(parts["val"]), len(parts["test"])) == (120, 60, 20)


@pytest.mark.parametrize("layout, message", [
    (None, "does not exist"),
    ({}, "has no class sub-folders"),
    ({"only": 5}, "has one class ('only')"),
    ({"a": 5, "b": 2}, "class 'b' in"),
])
def test_unusable_folders_get_one_line_errors(tmp_path, layout, message):
    root = tmp_path / "images"
    if layout is not None:
        root.mkdir()
        write_class_images(root, layout)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_splits(root, 16, SplitConfig(), seed=0)


def test_a_folder_of_only_corrupt_files_says_so(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"has no readable images \(2 unreadable\)"):
        load_splits(tmp_path, 16, SplitConfig(), seed=0, warn=lambda line: None)


def test_augmentation_changes_training_batches_only(image_folder):
    from study.config import AugmentConfig

    data = load_splits(image_folder, 32, SplitConfig(), seed=0)
    x, y = data.x["val"], data.y["val"]
    plain = next(iter(make_dataset(x, y, 64)))[0].numpy()
    augmented = next(iter(make_dataset(x, y, 64, augment=AugmentConfig(rotation=0.2, zoom=0.2))))[0].numpy()
    assert np.array_equal(plain, x.astype(np.float32))
    assert not np.allclose(augmented, plain)
