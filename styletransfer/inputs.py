"""`Inputs`: the pictures of one run (content, style or a blend of styles, the initial image,
region masks), each a file path or an HxWx3 uint8 array, and their loading and checks.

Field names are the command line's: `Inputs('photo.jpg', 'painting.jpg')`,
`Inputs('photo.jpg', style_blend='a.jpg:0.7,b.jpg:0.3')`, `region=['sky.png:clouds.jpg']`,
`init='noise'`. Syntax is checked when the object is made; files are read by `load`, which
refuses, with one line naming the picture, what cannot be read or is too small for the layers.
"""
import hashlib
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import StyleTransferError
from .settings import FLOAT32_MAX

# Values of `init` that are not pictures.
INIT_KINDS = ('content', 'noise')
NO_STYLE = 'none'


def _is_path(value):
    return isinstance(value, (str, os.PathLike))


def _is_picture(value):
    return _is_path(value) or isinstance(value, np.ndarray) or hasattr(value, 'getbands')


def parse_style_blend(text):
    """'a.jpg:0.7,b.jpg:0.3' -> (('a.jpg', 0.7), ('b.jpg', 0.3)); a missing weight is 1."""
    pairs = []
    for item in text.split(','):
        path, sep, weight = item.strip().rpartition(':')
        if not sep:
            path, weight = weight, '1'
        try:
            pairs.append((path, float(weight)))
        except ValueError:
            raise StyleTransferError('style_blend %r: expected PATH:WEIGHT,PATH:WEIGHT,...'
                                     % text, 'style_blend') from None
        if not path:
            raise StyleTransferError('style_blend %r: an entry has no path' % text,
                                     'style_blend')
    return tuple(pairs)


def parse_region(text):
    """'MASK:STYLE' or 'MASK:none' -> (mask, style)."""
    mask, sep, style = text.rpartition(':')
    if not sep or not mask or not style:
        raise StyleTransferError('region %r: expected MASK.png:STYLE.jpg or MASK.png:none'
                                 % text, 'region')
    return mask, style


@dataclass(frozen=True, eq=False)
class Inputs:
    content: Any
    style: Any = None
    style_blend: Any = ()       # ((picture, weight), ...) or 'a.jpg:0.7,b.jpg:0.3'; replaces style
    init: Any = 'content'       # 'content', 'noise', or a picture
    region: Any = ()            # ((mask, style or 'none'), ...) or 'MASK:STYLE' texts

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)
        if not _is_picture(self.content):
            raise StyleTransferError('content must be a file path or an HxWx3 picture',
                                     'content')
        blend = self.style_blend
        if isinstance(blend, str):
            blend = parse_style_blend(blend) if blend.strip() else ()
        blend = tuple((picture, _weight(w)) for picture, w in (blend or ()))
        put('style_blend', blend)
        if blend and self.style is not None:
            raise StyleTransferError('give style or style_blend, not both', 'style_blend')
        if blend:
            weights = [w for _, w in blend]
            if not all(_is_picture(p) for p, _ in blend):
                raise StyleTransferError('style_blend entries must be (picture, weight)',
                                         'style_blend')
            if (any(not 0 <= w <= FLOAT32_MAX for w in weights)
                    or not 0 < sum(weights) <= FLOAT32_MAX):
                raise StyleTransferError('style_blend weights must be finite numbers >= 0, '
                                         'not all 0, with a finite sum', 'style_blend')
        elif self.style is not None and not _is_picture(self.style):
            raise StyleTransferError('style must be a file path or an HxWx3 picture', 'style')
        init = self.init
        if isinstance(init, str) and init.strip().lower() in INIT_KINDS:
            init = init.strip().lower()
        elif init is None:
            init = 'content'
        elif not _is_picture(init):
            raise StyleTransferError('init must be content, noise or a picture', 'init')
        put('init', init)
        regions = self.region
        if isinstance(regions, str):
            regions = (regions,)
        parsed = []
        for r in regions or ():
            mask, style = parse_region(r) if isinstance(r, str) else r
            if not _is_picture(mask) or not (_is_picture(style) or style is None):
                raise StyleTransferError('region entries must be (mask, style or none)',
                                         'region')
            parsed.append((mask, NO_STYLE if style is None else style))
        put('region', tuple(parsed))

    @property
    def init_kind(self):
        """'content', 'noise' or 'picture'."""
        return self.init if isinstance(self.init, str) and self.init in INIT_KINDS else 'picture'

    @property
    def styles(self):
        """((picture, normalised weight), ...) whose Gram matrices are mixed (none when there
        is no style: a feed-forward network may carry its own)."""
        if not self.style_blend:
            return ((self.style, 1.0),) if self.style is not None else ()
        total = sum(w for _, w in self.style_blend)
        return tuple((picture, w / total) for picture, w in self.style_blend)

    def files(self):
        """Every file path the run reads, in order: content, styles, initial image, masks and
        their styles."""
        values = [self.content] + [p for p, _ in self.styles] + (
            [self.init] if self.init_kind == 'picture' else []) + [
            v for pair in self.region for v in pair]
        return [os.fspath(v) for v in values if _is_path(v) and v != NO_STYLE]

    def load(self, min_side=1):
        """Read and check every picture; pictures smaller than `min_side` are refused."""
        notes = []

        def get(value, what):
            picture, more = _load_picture(value, what, min_side)
            notes.extend(more)
            return picture
        content = get(self.content, 'content')
        styles = [(get(p, 'style'), w) for p, w in self.styles]
        init = None if self.init_kind != 'picture' else get(self.init, 'init')
        regions = []
        for mask, style in self.region:
            regions.append((get(mask, 'region mask'),
                            None if _is_path(style) and style == NO_STYLE
                            else get(style, 'region style')))
        return LoadedInputs(content, styles, init, self.init_kind, regions, notes)


def _weight(value):
    try:
        weight = float(value)
    except (TypeError, ValueError):
        raise StyleTransferError('style_blend weight %r is not a number' % (value,),
                                 'style_blend') from None
    if math.isnan(weight):
        raise StyleTransferError('style_blend weights must be finite numbers >= 0, not all 0, '
                                 'with a finite sum', 'style_blend')
    return weight


def _load_picture(value, what, min_side):
    from .images import load_image
    if _is_path(value):
        name = os.fspath(value)
        picture, notes = load_image(name)
    else:
        name, notes = '%s picture' % what, []
        picture = np.asarray(value.convert('RGB') if hasattr(value, 'getbands') else value)
        if picture.ndim == 2:
            picture = np.repeat(picture[..., None], 3, axis=2)
        if picture.ndim != 3 or picture.shape[2] != 3:
            raise StyleTransferError('%s: expected an HxWx3 array, got shape %s'
                                     % (name, picture.shape), what.split()[0])
        if picture.dtype != np.uint8:
            if not np.isfinite(picture).all() or picture.min() < 0 or picture.max() > 255:
                raise StyleTransferError('%s: values must be finite, in 0..255' % name,
                                         what.split()[0])
            picture = np.round(picture).astype(np.uint8)
    check_side(picture, name, min_side)
    return np.ascontiguousarray(picture), notes


def check_side(picture, name, min_side):
    """Refuse a picture (HxWx3) smaller than `min_side` on a side, naming it."""
    if min(picture.shape[:2]) < min_side:
        raise StyleTransferError('%s: %dx%d is too small: the layers used need at least %d '
                                 'pixels on each side' % (name, picture.shape[1],
                                                          picture.shape[0], min_side))


def digest(picture):
    """SHA-256 of a picture's pixels and shape: what a resumed run must find again."""
    h = hashlib.sha256(repr(picture.shape).encode())
    h.update(np.ascontiguousarray(picture).tobytes())
    return h.hexdigest()


@dataclass
class LoadedInputs:
    content: np.ndarray                 # HxWx3 uint8
    styles: list                        # [(HxWx3 uint8, normalised weight)]
    init: Any                           # HxWx3 uint8 or None
    init_kind: str                      # 'content', 'noise' or 'picture'
    regions: list                       # [(mask HxWx3 uint8, style HxWx3 uint8 or None)]
    notes: list = field(default_factory=list)   # one-line remarks on conversions

    def digests(self):
        pictures = [self.content] + [p for p, _ in self.styles] + (
            [self.init] if self.init is not None else []) + [
            p for pair in self.regions for p in pair if p is not None]
        return [digest(p) for p in pictures]
