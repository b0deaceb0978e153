"""Images decoded as what they are (`ganad.data.folders`): 16-bit pixels scaled by their depth, float pixels in
[0, 1] scaled, a TIFF stack's first frame, a photo turned upright by its EXIF orientation; what cannot be mapped
to 8 bits without saturating (floats outside [0, 1], 32-bit integers beyond 255), GIFs, and images whose header
declares more pixels than Pillow's decompression-bomb limit are listed with their reason in the one warning, never
silently saturated or dropped."""

import re

import numpy as np
import pytest
from PIL import Image, ImageFile

from ganad.data.folders import read_classed, read_images, warn_skipped


def save(path, array, **options):
    Image.fromarray(array).save(path, **options)
    return path


def test_16_bit_pngs_are_scaled_by_their_bit_depth(tmp_path):
    path = save(tmp_path / "a.png", np.array([[1000, 40000], [40000, 1000]], np.uint16))
    assert Image.open(path).mode == "I;16"
    x, kept, skipped = read_images([path], size=2)
    assert kept == [0] and not skipped
    assert x[0].tolist() == [[4, 156], [156, 4]]  # round(v / 257): 65535 -> 255, not everything above 255 -> 255


def test_float_tiffs_in_0_1_are_scaled(tmp_path):
    path = save(tmp_path / "a.tif", np.full((4, 4), 0.5, np.float32))
    x, kept, skipped = read_images([path], size=4)
    assert not skipped and np.all(x[0] == 128)
    ramp = save(tmp_path / "b.tif", np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4))
    x, _, _ = read_images([ramp], size=4)
    assert x[0].min() == 0 and x[0].max() == 255


def test_eight_bit_images_decode_as_before(tmp_path):
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3
    colour = np.stack([grey, 255 - grey, grey // 2], axis=-1)
    x, _, skipped = read_images([save(tmp_path / "g.png", grey), save(tmp_path / "c.png", colour)], size=8)
    assert not skipped
    assert np.array_equal(x[0], np.repeat(grey[..., None], 3, axis=2)) and np.array_equal(x[1], colour)


@pytest.mark.parametrize(
    "name, array, reason",
    [
        ("over1.tif", np.full((4, 4), 3.5, np.float32), r"float pixels \(3.5..3.5\) are not in \[0, 1\]"),
        ("negative.tif", np.full((4, 4), -0.5, np.float32), r"not in \[0, 1\]"),
        ("nan.tif", np.full((4, 4), np.nan, np.float32), r"no finite value"),
        ("int32.tif", np.full((4, 4), 70000, np.int32), r"32-bit integer pixels span 70000..70000"),
    ],
)
def test_pixels_that_would_saturate_are_listed_with_the_reason(tmp_path, name, array, reason):
    path = save(tmp_path / name, array)
    x, kept, skipped = read_images([path], size=4)
    assert kept == [] and len(skipped) == 1
    assert re.search(reason, skipped[0][1]), skipped


def test_gifs_are_listed_in_the_warning_not_dropped(tmp_path):
    root = tmp_path / "photos"
    (root / "cats").mkdir(parents=True)
    (root / "dogs").mkdir()
    for i in range(2):
        save(root / "cats" / f"{i}.png", np.full((8, 8), 40 * i, np.uint8))
        save(root / "dogs" / f"{i}.png", np.full((8, 8), 200, np.uint8))
    frames = [Image.fromarray(np.full((8, 8), v, np.uint8)) for v in (10, 200)]
    frames[0].save(root / "cats" / "moving.gif", save_all=True, append_images=frames[1:])
    with pytest.warns(UserWarning, match=r"(?s)skipped 1 file.*moving.gif \(GIF images .* convert it to PNG\)"):
        images = read_classed(root)
    assert len(images.paths) == 4


def test_a_tiff_stack_gives_its_first_frame(tmp_path):
    frames = [Image.fromarray(np.full((4, 4), v, np.uint8)) for v in (30, 220)]
    frames[0].save(tmp_path / "stack.tif", save_all=True, append_images=frames[1:])
    x, _, skipped = read_images([tmp_path / "stack.tif"], size=4)
    assert not skipped and np.all(x[0] == 30)


def test_decompression_bombs_are_refused_by_their_header(tmp_path, monkeypatch):
    path = save(tmp_path / "big.png", np.zeros((64, 64), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 4096 pixels: over the limit, under twice it
    decoded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(1) or real_load(self))
    x, kept, skipped = read_images([path], size=8)
    assert kept == [] and "decompression bomb" in skipped[0][1].lower() and not decoded
    with pytest.warns(UserWarning, match="could not be decoded"):
        warn_skipped(skipped, tmp_path)


def test_an_exif_orientation_tag_turns_the_photo_upright(tmp_path):
    # stored sideways (8 wide, 4 high, bright on the left) with tag 6: a viewer turns it 90 degrees clockwise,
    # showing 4 wide and 8 high with the bright half on top
    stored = np.zeros((4, 8), np.uint8)
    stored[:, :4] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to view
    tagged = save(tmp_path / "tagged.jpg", stored, exif=exif, quality=100)
    plain = save(tmp_path / "plain.jpg", stored, quality=100)
    (upright, sideways), kept, skipped = read_images([tagged, plain], size=4)
    assert kept == [0, 1] and not skipped
    # the centre square of the upright image (rows 2..5 of 8) is half bright on top, half dark below
    assert upright[:2].mean() > 200 and upright[2:].mean() < 50
    # without the tag the centre square (columns 2..5) is bright on the left, dark on the right
    assert sideways[:, :2].mean() > 200 and sideways[:, 2:].mean() < 50
