"""Training pictures: every image file under a folder (any depth), read as random square crops in
a deterministic order, through a Gluon DataLoader.

- Files: names ending in one of EXTENSIONS (any case), found by walking the folder (symbolic
  links to folders are not followed, so a link loop cannot hang the walk), sorted by relative
  path so every machine and every resume sees the same list.
- Crops: the picture is resized (bilinear) so that its shorter side is `resize` (default:
  `size`), then a `size` x `size` square is cut at a random position. pytorch/examples'
  fast_neural_style resizes and takes the centre; the issue asks for random crops, which show
  the network more of each picture. AdaIN's authors resize to 512 and crop 256 (resize 512,
  size 256): a crop then shows a quarter of the picture's shorter side, at half its scale.
- Order: position p of the stream (p = iteration * batch + k) is picture perm_e[p mod n] of
  epoch e = p // n, with perm_e a permutation drawn from (seed, rank, e) and the crop from
  (seed, rank, p). Nothing is kept between batches, so the stream restarted at any iteration
  (a resumed training) reads exactly the same crops.
- Sharding: worker `rank` of `workers` reads files[rank::workers].
- Broken files (not an image, truncated, unreadable) are skipped where they are met: the
  reader takes the next file of the shard instead, and reports the skipped one. If no file of
  the shard can be read, that is one StyleTransferError.
"""
import os
import warnings

import numpy as np
from PIL import Image

from ..errors import StyleTransferError

EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff', '.webp', '.ppm')
# Seed tags, so the three random streams never share draws.
ORDER, CROP, CONDITION = 0, 1, 2


def list_images(folder, exclude=(), field='content_dir'):
    """Sorted paths relative to `folder` of the image files under it, less `exclude` (paths).
    An absent, unreadable or empty folder is a one-line StyleTransferError about `field`."""
    folder = os.fspath(folder)
    if not os.path.exists(folder):
        raise StyleTransferError('%s: no such folder' % folder, field)
    if not os.path.isdir(folder):
        raise StyleTransferError('%s: not a folder' % folder, field)
    if not os.access(folder, os.R_OK | os.X_OK):
        raise StyleTransferError('%s: cannot read the folder (permission denied)' % folder,
                                 field)
    skip = {os.path.realpath(p) for p in exclude}
    found, unreadable = [], []
    for root, dirs, names in os.walk(folder, onerror=unreadable.append):
        dirs.sort()
        for name in names:
            path = os.path.join(root, name)
            if name.lower().endswith(EXTENSIONS) and os.path.realpath(path) not in skip:
                found.append(os.path.relpath(path, folder))
    if not found:
        where = ' (%d subfolders could not be read)' % len(unreadable) if unreadable else ''
        raise StyleTransferError('%s: no image files (%s) in it or below%s'
                                 % (folder, ', '.join(EXTENSIONS), where), field)
    return sorted(found)


def read_crop(path, size, rng, resize=None):
    """A size x size HxWx3 uint8 crop of the picture at `path`: shorter side resized to
    `resize` (default `size`; never below `size`), then a square at a position drawn from
    `rng` (a numpy Generator). Raises OSError-like errors on broken files (the caller skips
    them)."""
    load = max(size, resize or size)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')          # EXIF chatter; bombs raise below
        warnings.simplefilter('error', Image.DecompressionBombWarning)
        with Image.open(path) as img:
            # JPEG decodes at 1/2, 1/4 or 1/8 scale when that still covers the size: a COCO
            # picture costs a quarter of the work
            img.draft('RGB', (load, load))
            img = img.convert('RGB')
            img, new = _shorter_side(img, load)
    left = int(rng.integers(0, new[0] - size + 1))
    top = int(rng.integers(0, new[1] - size + 1))
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


def read_resized(path, size):
    """The whole picture, shorter side resized to `size` and both sides cut down to multiples
    of 4 (the TransformerNet gives back the size it was given only then). For sample sheets."""
    with Image.open(path) as img:
        img = img.convert('RGB')
        width, height = img.size
        scale = size / min(width, height)
        new = (max(4, round(width * scale)) // 4 * 4, max(4, round(height * scale)) // 4 * 4)
        return np.asarray(img.resize(new, Image.Resampling.BILINEAR), dtype=np.uint8)


def _shorter_side(img, side):
    """(img resized so that its shorter side is `side`, its new (width, height))."""
    width, height = img.size
    scale = side / min(width, height)
    new = (max(side, round(width * scale)), max(side, round(height * scale)))
    return img.resize(new, Image.Resampling.BILINEAR), new


def centre_crop(picture, size, resize=None):
    """Shorter side resized to `resize` (default `size`), the centre size x size square: how
    evaluation sees a picture (as training's crops do, but for their random position)."""
    img, new = _shorter_side(Image.fromarray(picture, 'RGB'), max(size, resize or size))
    left, top = (new[0] - size) // 2, (new[1] - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


class ImageFolder:
    """The image files of one folder and this worker's shard of them."""

    def __init__(self, folder, exclude=(), rank=0, workers=1, field='content_dir'):
        self.folder = os.path.abspath(os.fspath(folder))
        self.field = field
        self.files = list_images(self.folder, exclude, field)
        self.rank, self.workers = rank, workers
        self.shard = self.files[rank::workers]
        if not self.shard:
            raise StyleTransferError('%s: %d image files for %d workers: each worker needs one'
                                     % (folder, len(self.files), workers), field)

    def path(self, index):
        return os.path.join(self.folder, self.shard[index])

    def digest(self):
        """What identifies the list (not the bytes: hashing COCO's 13 GB would take minutes)."""
        import hashlib
        return hashlib.sha256('\n'.join(self.files).encode('utf-8')).hexdigest()


def position_keys(seed, rank, n, start, count, stream=0):
    """(file index in the shard, crop seed) for stream positions start .. start+count-1;
    `stream` tells apart the folders of a recipe that reads several."""
    keys, epoch, order = [], None, None
    for p in range(start, start + count):
        if p // n != epoch:
            epoch = p // n
            order = np.random.default_rng([seed, ORDER, stream, rank, epoch]).permutation(n)
        keys.append((int(order[p % n]), (seed, CROP, stream, rank, p)))
    return keys


class CropDataset:
    """Gluon Dataset whose items are keys (file index, crop seed) -> (crop, skipped paths).
    A broken file is replaced by the next one of the shard (deterministic, so a resumed run
    meets the same replacements)."""

    def __init__(self, images, size, resize=None):
        self.images, self.size, self.resize = images, size, resize

    def __len__(self):
        return len(self.images.shard)

    def __getitem__(self, key):
        index, crop_seed = key
        n = len(self.images.shard)
        skipped = []
        for k in range(n):
            path = self.images.path((index + k) % n)
            try:
                return read_crop(path, self.size, np.random.default_rng(list(crop_seed)),
                                 self.resize), skipped
            except Exception as e:          # Pillow raises many kinds on damaged files
                skipped.append((self.images.shard[(index + k) % n], _reason(e)))
        first, why = skipped[0]
        raise StyleTransferError('%s: none of the %d image files%s could be read (first: %s: %s)'
                                 % (self.images.folder, n, ' of this worker\'s shard'
                                    if self.images.workers > 1 else '', first, why),
                                 self.images.field)


def _reason(error):
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:120]


def _batchify(items):
    pictures = np.stack([picture for picture, _ in items])
    skipped = [s for _, found in items for s in found]
    return pictures, skipped


class KeySampler:
    """Gluon batch sampler: the keys of batches `start` .. `stop - 1`."""

    def __init__(self, images, seed, batch, start, stop, stream=0):
        self.images, self.seed, self.batch, self.start, self.stop = \
            images, seed, batch, start, stop
        self.stream = stream

    def __iter__(self):
        n = len(self.images.shard)
        for i in range(self.start, self.stop):
            yield position_keys(self.seed, self.images.rank, n, i * self.batch, self.batch,
                                self.stream)

    def __len__(self):
        return max(0, self.stop - self.start)


def batches(images, size, batch, seed, start, stop, workers=0, stream=0, resize=None):
    """An iterator of (N x size x size x 3 uint8 numpy, [(skipped path, reason)]) for
    iterations start .. stop - 1, crops of pictures resized to `resize` (see read_crop).
    `workers` > 0 decodes in that many threads ahead of use."""
    from mxnet.gluon.data import DataLoader
    loader = DataLoader(CropDataset(images, size, resize),
                        batch_sampler=KeySampler(images, seed, batch, start, stop, stream),
                        batchify_fn=_batchify, num_workers=workers, thread_pool=True,
                        prefetch=2 * workers if workers else None)
    return iter(loader)

