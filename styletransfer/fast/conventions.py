"""What a feed-forward network's input and output pixels mean.

A convention is an affine map between pixels in 0..255 and the network's space,
    x = (pixels / 255 - mean) / std,
and back, clipped to 0..255 (a network's output can leave the range; the pretrained PyTorch
models' own stylise step clamps it). A network's file records its convention by name:

- 'rgb255': RGB 0..255 in and out, nothing subtracted. The PyTorch-examples fast_neural_style
  models (candy, mosaic, rain_princess, udnie) were trained this way.
- 'imagenet': the project's normalisation (images.RGB_MEAN / RGB_STD, as the VGG input); the
  output is read back the same way. Our own TransformerNets default to it.
- 'rgb01': RGB 0..1 in and out (torchvision's ToTensor without normalisation).
"""
from collections import namedtuple

from ..errors import StyleTransferError
from ..images import RGB_MEAN, RGB_STD

Convention = namedtuple('Convention', 'name mean std')

CONVENTIONS = {c.name: c for c in (
    Convention('rgb255', (0.0, 0.0, 0.0), (1 / 255,) * 3),
    Convention('imagenet', RGB_MEAN, RGB_STD),
    Convention('rgb01', (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
)}


def get(name):
    try:
        return CONVENTIONS[name]
    except (KeyError, TypeError):
        raise StyleTransferError('unknown pixel convention %r (known: %s)'
                                 % (name, ', '.join(sorted(CONVENTIONS)))) from None


def _column(values, like):
    from mxnet import nd
    return nd.array(values, ctx=like.context, dtype=like.dtype).reshape((1, 3, 1, 1))


def to_input(pixels, name):
    """N x 3 x H x W pixels in 0..255 (float NDArray) -> the network's input."""
    c = get(name)
    scaled = pixels / 255
    from mxnet import nd
    return nd.broadcast_div(nd.broadcast_sub(scaled, _column(c.mean, scaled)),
                            _column(c.std, scaled))


def from_output(y, name):
    """The network's output -> N x 3 x H x W pixels clipped to 0..255 (float)."""
    c = get(name)
    from mxnet import nd
    scaled = nd.broadcast_add(nd.broadcast_mul(y, _column(c.std, y)), _column(c.mean, y))
    return (scaled * 255).clip(0, 255)
