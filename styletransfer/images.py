"""Images: load with Pillow, resize and normalise the book's way, turn back into pictures, save.

Arrays on the MXNet side are HxWx3 (pictures) or 1x3xHxW (network input); the ImageNet mean and
std live on the run's context so that normalising never mixes devices.
"""
import io
import os
import warnings

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin

from .errors import StyleTransferError
from .files import atomic_path, check_input_file

RGB_MEAN = (0.485, 0.456, 0.406)
RGB_STD = (0.229, 0.224, 0.225)
SAVE_FORMATS = {'.png': 'PNG', '.jpg': 'JPEG', '.jpeg': 'JPEG'}


def load_image(path, data=None):
    """Read an image file into an HxWx3 uint8 array, upright and RGB.

    With `data`, the file's bytes already read (a batch sends them to a worker on another
    machine), nothing is read from disk and `path` only names the picture in messages.
    Returns (array, notes): notes are one-line remarks on conversions the caller may show.
    Every failure is a StyleTransferError naming the file.
    """
    path = os.fspath(path)
    if data is None:
        check_input_file(path, 'an image')
        empty = os.path.getsize(path) == 0
    else:
        empty = len(data) == 0
    if empty:
        raise StyleTransferError('%s: file is empty' % path)
    source = path if data is None else io.BytesIO(data)
    notes = []
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its pixel limit and twice it; a bomb must be refused.
            # Its other warnings (skipped damaged EXIF tags) say nothing a user can act on.
            warnings.simplefilter('ignore')
            warnings.simplefilter('error', Image.DecompressionBombWarning)
            with Image.open(source) as img:
                if getattr(img, 'n_frames', 1) > 1:
                    notes.append('%s: %d frames, using the first' % (path, img.n_frames))
                img.seek(0)
                upright = ImageOps.exif_transpose(img)
                if upright is not img and img.getexif().get(0x0112, 1) != 1:
                    notes.append('%s: rotated upright as its EXIF orientation says' % path)
                rgb = _to_rgb(upright, path, notes)
                array = np.asarray(rgb, dtype=np.uint8).copy()
    except StyleTransferError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise StyleTransferError('%s: refused, too many pixels (%s)' % (path, e)) from e
    except PermissionError as e:
        raise StyleTransferError('%s: cannot read the file (permission denied)' % path) from e
    except Image.UnidentifiedImageError as e:
        raise StyleTransferError('%s: not an image file Pillow can read' % path) from e
    except Exception as e:
        # Pillow's decoders raise more than OSError and ValueError on damaged files (a TIFF
        # without its width tag: TypeError from n_frames); any of them means the same here.
        raise StyleTransferError('%s: damaged or truncated image (%s)' % (path, e)) from e
    return array, notes


def _to_rgb(img, path, notes):
    if img.mode == 'RGB':
        return img
    if img.mode in ('RGBA', 'LA', 'PA') or (img.mode == 'P' and 'transparency' in img.info):
        notes.append('%s: has transparency, composited on white' % path)
        rgba = img.convert('RGBA')
        white = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert('RGB')
    if img.mode.startswith('I;16') or img.mode == 'I':
        notes.append('%s: %s image scaled to 8 bits and converted to RGB' % (path, img.mode))
        wide = np.asarray(img, dtype=np.float64)
        top = 65535.0 if wide.max() > 255 else 255.0
        grey = Image.fromarray(np.round(wide / top * 255).astype(np.uint8), 'L')
        return grey.convert('RGB')
    notes.append('%s: converted from %s to RGB' % (path, img.mode))
    return img.convert('RGB')


def resize(img, width, height):
    """Bilinear resize of an HxWx3 NDArray to width x height, as the book does (no rounding)."""
    from mxnet import image
    return image.imresize(img, width, height)


class Normalizer:
    """ImageNet normalisation on one context: pictures <-> network input."""

    def __init__(self, ctx):
        from mxnet import nd
        self.ctx = ctx
        self.mean = nd.array(RGB_MEAN, ctx=ctx)
        self.std = nd.array(RGB_STD, ctx=ctx)

    def preprocess(self, img, width, height):
        """HxWx3 picture with values in 0..255 (uint8 or float) -> 1x3xHxW input on ctx.

        Resizing runs where the picture lives (OpenCV's resize is a CPU operator); the
        normalisation runs on this normaliser's context.
        """
        from mxnet import nd
        if not isinstance(img, nd.NDArray):
            img = nd.array(img, dtype=img.dtype)
        if img.context.device_type != 'cpu':
            img = img.as_in_context(_cpu())
        img = resize(img, width, height).as_in_context(self.ctx)
        img = (img.astype('float32') / 255 - self.mean) / self.std
        return img.transpose((2, 0, 1)).expand_dims(axis=0)

    def pixel_bounds(self):
        """Per-channel (lower, upper) of network inputs that are pixels in [0, 1]: 1x3x1x1."""
        lower = ((0 - self.mean) / self.std).reshape((1, 3, 1, 1))
        upper = ((1 - self.mean) / self.std).reshape((1, 3, 1, 1))
        return lower, upper

    def resize_mask(self, mask, width, height):
        """HxW float mask in [0, 1] -> 1x1xHxW on this context, bilinear like the images."""
        from mxnet import nd
        m = nd.array(mask[..., None], dtype='float32', ctx=_cpu())
        m = resize(m, width, height).as_in_context(self.ctx)
        return m.reshape((1, 1, height, width)).clip(0, 1)

    def postprocess(self, x):
        """1x3xHxW network input -> HxWx3 picture in [0, 1] on this context."""
        return (x[0].as_in_context(self.ctx).transpose((1, 2, 0)) * self.std + self.mean).clip(0, 1)


def _cpu():
    import mxnet as mx
    return mx.cpu()


def to_uint8(picture):
    """HxWx3 picture in [0, 1] (NDArray or numpy) -> uint8 numpy array."""
    array = picture.asnumpy() if hasattr(picture, 'asnumpy') else np.asarray(picture)
    return np.clip(np.round(array * 255), 0, 255).astype(np.uint8)


def check_output_format(path):
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in SAVE_FORMATS:
        raise StyleTransferError('%s: output must end in .png, .jpg or .jpeg' % path)
    return SAVE_FORMATS[ext]


def save_image(array, path, metadata=None):
    """Save an HxWx3 uint8 array atomically, PNG or JPEG by extension, with text metadata."""
    fmt = check_output_format(path)
    img = Image.fromarray(np.ascontiguousarray(array), 'RGB')
    metadata = metadata or {}
    options = {}
    if fmt == 'PNG':
        info = PngImagePlugin.PngInfo()
        for key, value in metadata.items():
            info.add_text(key, str(value))
        options['pnginfo'] = info
    else:
        options.update(quality=95, comment='; '.join('%s: %s' % kv for kv in metadata.items()))
    with atomic_path(path) as tmp:
        img.save(tmp, format=fmt, **options)
