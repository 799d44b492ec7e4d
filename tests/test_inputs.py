"""Bad and unusual input images: each is refused with our error, or converted with a note."""
import base64
import io
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from styletransfer import images
from styletransfer.errors import StyleTransferError
from styletransfer.images import load_image


def gradient(width=40, height=30):
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], -1).astype(np.uint8)


def write(tmp_path, name, img, **save):
    path = tmp_path / name
    img.save(path, **save)
    return str(path)


def refused(path, *words):
    with pytest.raises(StyleTransferError) as e:
        load_image(path)
    message = str(e.value)
    assert '\n' not in message
    for word in words:
        assert word in message, message
    return message


def test_missing_path(tmp_path):
    refused(str(tmp_path / 'nope.jpg'), 'nope.jpg', 'no such file')


def test_directory(tmp_path):
    refused(str(tmp_path), 'is a directory')


def test_empty_file(tmp_path):
    path = tmp_path / 'empty.png'
    path.write_bytes(b'')
    refused(str(path), 'empty')


def test_not_an_image(tmp_path):
    path = tmp_path / 'notes.jpg'
    path.write_text('these are not pixels\n' * 20)
    refused(str(path), 'not an image')


def test_truncated_image(tmp_path):
    full = io.BytesIO()
    Image.fromarray(gradient(200, 150)).save(full, format='JPEG', quality=95)
    path = tmp_path / 'cut.jpg'
    path.write_bytes(full.getvalue()[: len(full.getvalue()) // 2])
    refused(str(path), 'cut.jpg', 'truncated')


def test_corrupt_png(tmp_path):
    good = io.BytesIO()
    Image.fromarray(gradient()).save(good, format='PNG')
    data = bytearray(good.getvalue())
    data[60:80] = b'\x00' * 20   # inside the image data chunk: its CRC no longer matches
    path = tmp_path / 'bad.png'
    path.write_bytes(bytes(data))
    refused(str(path), 'bad.png')


# A mutated TIFF that hypothesis found: its tags leave Pillow without the image's dimensions,
# and Pillow raises TypeError (not OSError) when asked how many frames it has.
TIFF_WITHOUT_DIMENSIONS = (
    'eNpNkymTrEgQgGume/qgG4qruPqonuOtwKDQpR8GhS6PweBr1QpiIzD48hgMvjQKgy+NwvADtmdjxMuML/KLjMx0'
    '+ft3CA4AgD0AL1vw8jTvycuP609eXzZg86z/PNk8/bv/ze7HX58YP/P/PkE//e8d54877o//vQXg+sed7zj8n89Q'
    'wAsCrxhsQrCNwRsBuwTsM3Cg4JgDpQQnBs4VUBugcQBboPfAEMAcgDUBWwI0A2cFLoAvCnxFcIPhNoRvMdwRuE/g'
    'IYNHCpUcnkp4ZlCtoNZAyKHeQqOHpoDWAO0JIgmdGbor9AB+VfAG4S3GbyHexXhP8CHBxwwrFJ9yfC6xyrBWYdhg'
    'nWOjxWaPLYHtAaMJOxK7M/ZW7INoo0RbFL3haBdG+zg6kOiYREoWnWh0ziO1jDQWwSrSm8jgkdlGVh/ZIkJD5EyR'
    'KyNvjvw1CgDZKuQNkR0m+5AcYnIkREnIKSNnStScaCWBjOgVMRpicmK1xO4JEsQZiDsRTxJ/JsFKLiB9U9IdSvc4'
    'PYTpMU4Vkp6S9JylKk21PIVlqrPUqFKzSS2e2m2K+tQRqTuk3pT6Mg3m9LKmV0B3Ct0jesD0GFIlpidCzwlVM6pR'
    'CnOql9Rg1Kyo1VCbU9RSp6euoN5A/YkGkl5mel3pDRR7pTig4ogLJSxOcXEmhZoUWlZAWuh5YZSFyQqrKuymQLxw'
    '2sLtC08U/lAEU3GRxXUubmtxB+ygsCNiCmankJ1jphKmJQxmTKfMyJlZMosxu2KoYQ5nbsu8nvmCBQO7TOwq2W1m'
    '95VhUB+VWkH1CdfnsFbjWiM1TGo9qw1am3ltlbXNalTVTlO7vPba2u/rQNSXob5O9U3W97nGa/0AXFH4CfEz5mrI'
    'tZhDwvWEGxk3KbdybpccMe5U3G24x7nf8qDnF8GvA79N/C45nvlj5e+gOyndGXUq7rSwg3Gnk85IOjPrLNrZeYfK'
    'zmGdW3Ve0/m8C9ru0ndX0d2G7j51WHaPuXtfuw8gzopQkdCwgKHQY2EQYSbCyoRNBcqFUwqXCa8SfiMCLi6tuPbi'
    'JsR9EHgSDyneZ/Gxik8wqsqooRHiUQ9HIx5NMlrJaGcjoqOTj245emz0qzFoxgsfr+1468e7GPEwPqbxXY4f8/i5'
    'jl9Aaop8/puOpRFKM5YWkXYiUSYdKt1ceqX0mQwqeWnklctbK++9xEI+Bvk+yQ8pP2f5tcpfYIHKoqPFwIsZLla8'
    '2GRByeJki0sXL1/8cgnYcqmWa7Pc+HJvF9wvD7G8D8vHtHzK5Wtefq3LX/8B4b2JNA==')


def test_tiff_whose_tags_pillow_cannot_size(tmp_path):
    path = tmp_path / 'odd.tif'
    path.write_bytes(zlib.decompress(base64.b64decode(TIFF_WITHOUT_DIMENSIONS)))
    refused(str(path), 'odd.tif', 'damaged')


def test_unreadable_file(tmp_path, monkeypatch):
    path = write(tmp_path, 'locked.png', Image.fromarray(gradient()))

    def denied(*args, **kwargs):   # tests run as root, for whom chmod 000 changes nothing
        raise PermissionError(13, 'Permission denied', path)
    monkeypatch.setattr(images.Image, 'open', denied)
    refused(path, 'permission denied')


@pytest.mark.parametrize('side', [40, 100])   # between the limit and twice it; beyond twice
def test_decompression_bomb_is_an_error(tmp_path, monkeypatch, side):
    path = write(tmp_path, 'bomb.png', Image.new('RGB', (side, side)))
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 1000)
    refused(path, 'too many pixels')


@pytest.mark.parametrize('mode, word', [('L', 'from L'), ('P', 'from P'), ('CMYK', 'from CMYK'),
                                        ('I;16', 'I;16'), ('RGBA', 'transparency'),
                                        ('LA', 'transparency')])
def test_conversions_are_noted(tmp_path, mode, word):
    rgb = Image.fromarray(gradient())
    if mode == 'I;16':
        wide = (np.asarray(rgb.convert('L'), dtype=np.uint16) * 257)
        img, ext = Image.fromarray(wide), 'png'
    else:
        img = rgb.convert(mode)
        ext = 'jpg' if mode == 'CMYK' else 'png'
    path = write(tmp_path, 'in.' + ext, img)
    array, notes = load_image(path)
    assert array.dtype == np.uint8 and array.shape == (30, 40, 3)
    assert len(notes) == 1 and word in notes[0]
    if mode == 'I;16':   # 16-bit values are scaled, not clipped: the grey ramp survives
        grey = np.asarray(rgb.convert('L'))
        assert np.abs(array[..., 0].astype(int) - grey).max() <= 1


def test_alpha_is_composited_on_white(tmp_path):
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., 0] = 255          # red
    rgba[:, :5, 3] = 255        # left half opaque, right half fully transparent
    path = write(tmp_path, 'a.png', Image.fromarray(rgba, 'RGBA'))
    array, _ = load_image(path)
    assert tuple(array[5, 2]) == (255, 0, 0)
    assert tuple(array[5, 8]) == (255, 255, 255)


def test_exif_rotation_is_applied(tmp_path):
    img = Image.fromarray(gradient(40, 30))
    exif = Image.Exif()
    exif[0x0112] = 6            # "rotate 90 degrees clockwise to display"
    path = write(tmp_path, 'phone.jpg', img, exif=exif.tobytes(), quality=95)
    array, notes = load_image(path)
    assert array.shape == (40, 30, 3)
    assert any('EXIF' in n for n in notes)
    plain, plain_notes = load_image(write(tmp_path, 'plain.jpg', img, quality=95))
    assert plain.shape == (30, 40, 3) and plain_notes == []
    # Rotated clockwise: the original's top-left corner is now the top-right.
    assert np.abs(array[0, -1].astype(int) - plain[0, 0].astype(int)).max() <= 8


def test_animated_gif_uses_first_frame(tmp_path):
    frames = [Image.new('RGB', (20, 20), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = str(tmp_path / 'anim.gif')
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    array, notes = load_image(path)
    assert tuple(array[10, 10]) == (255, 0, 0)
    assert any('2 frames' in n and 'first' in n for n in notes)


# Random bytes, and valid image files with random bytes overwritten, must never crash the
# loader: either an image comes out or our error does.
def _image_bytes(fmt):
    out = io.BytesIO()
    Image.fromarray(gradient(24, 16)).save(out, format=fmt)
    return out.getvalue()


SEEDS = {fmt: _image_bytes(fmt) for fmt in ('PNG', 'JPEG', 'GIF', 'BMP', 'TIFF', 'WEBP')}


@st.composite
def mutated_images(draw):
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[:draw(st.integers(1, len(data)))]
    return bytes(data)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(min_size=1, max_size=300), mutated_images()))
def test_random_bytes_only_raise_our_error(tmp_path, data):
    path = tmp_path / 'fuzz.img'
    path.write_bytes(data)
    try:
        array, _ = load_image(str(path))
    except StyleTransferError as e:
        assert '\n' not in str(e)
    else:
        assert array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3
