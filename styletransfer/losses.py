"""The book's losses as pure functions, weights passed in, nothing global.

Each takes `F`, the operator namespace, as Gluon's hybrid_forward does: `mxnet.nd` (the
default) on NDArrays, `mxnet.sym` when `objective.Objective` traces them into one graph with
the network. Symbols carry no shapes, so the functions then take the sizes they need
(`shape`, `size`).
"""
from collections import namedtuple

import numpy as np
from mxnet import nd

Losses = namedtuple('Losses', 'content style tv total')
# One region of a spatially controlled run: its style's Gram matrices and, per style layer,
# (mask resized to that layer, the mask's sum).
Region = namedtuple('Region', 'grams masks')


def _self_product(rows, num_rows, F):
    """rows . rows^T for a 2-D `rows`, as oneDNN's inner product (a fully connected layer whose
    weights are `rows` itself). nd.dot goes to OpenBLAS, slower for these long, thin matrices:
    the five style layers' Gram matrices at 450x300 took 148 ms forward and backward with dot,
    95 ms this way.

    The gradient is computed on one side only and doubled. For an upstream gradient D the
    true one is (D + D^T) . rows; every loss here has a symmetric D (the product is 1x1, or
    it is compared with a symmetric target Gram matrix), so that equals 2 D . rows, and the
    backward pass then skips the weights-side product and the sum of the two sides (4% of a
    step at 450x300). 2p - p is exactly p in floating point: the value is untouched."""
    product = F.FullyConnected(rows, F.BlockGrad(rows), no_bias=True, num_hidden=num_rows)
    return 2 * product - F.BlockGrad(product)


def mean_square(d, size=None, F=nd):
    """Mean of the squares of `d`'s `size` elements (for NDArrays, d.size): d's dot product
    with itself, one oneDNN call instead of MXNet's square then mean (3% of a step)."""
    total = _self_product(F.reshape(d, shape=(1, -1)), 1, F)
    return F.reshape(total, shape=(1,)) / (size or d.size)


def content_loss(y_hat, y, F=nd, size=None):
    """Mean squared difference of two feature maps (`size` elements each)."""
    return mean_square(y_hat - y, size, F)


def _features_times_transpose(x, shape, F):
    channels, positions = shape
    return _self_product(F.reshape(x, shape=(channels, positions)), channels, F)


def _shape(x, shape):
    return shape or (x.shape[1], x.size // x.shape[1])


def gram(x, shape=None, F=nd):
    """Gram matrix of a 1xCxHxW feature map, divided by C*H*W as in the book. Its gradient
    assumes a symmetric upstream gradient (see `_self_product`), as every loss here gives."""
    channels, positions = shape = _shape(x, shape)
    return _features_times_transpose(x, shape, F) / (channels * positions)


def masked_gram(x, mask, mask_sum, shape=None, F=nd):
    """Gram matrix of the features under a 1x1xHxW mask (Gatys et al. 2017's spatial control),
    divided by C times the mask's area: with a mask of ones it is `gram(x)`."""
    shape = _shape(x, shape)
    return _features_times_transpose(F.broadcast_mul(x, mask), shape, F) / (shape[0] * mask_sum)


def _gram_loss(gram_y_hat, gram_y, channels, F):
    return mean_square(gram_y_hat - gram_y, channels * channels, F)


def style_loss(y_hat, gram_y, shape=None, F=nd):
    """Mean squared difference between the Gram matrix of `y_hat` and a target Gram matrix."""
    shape = _shape(y_hat, shape)
    return _gram_loss(gram(y_hat, shape, F), gram_y, shape[0], F)


def tv_loss(x, F=nd):
    """Total variation: half the sum of mean absolute vertical and horizontal differences."""
    def mean_step(axis):
        later = F.slice_axis(x, axis=axis, begin=1, end=None)
        earlier = F.slice_axis(x, axis=axis, begin=0, end=-1)
        return F.mean(F.abs(later - earlier))
    return 0.5 * (mean_step(2) + mean_step(3))


def compute_losses(x, contents, styles, content_targets, style_grams,
                   content_weight, style_weight, tv_weight, shapes=None, content_sizes=None,
                   F=nd):
    """Weighted content, style and TV terms (each summed over its layers) and their total.

    `style_weight` is a number (the same for every style layer, as in the book) or a sequence
    with one weight per style layer. `style_grams` holds one Gram matrix per style layer, or,
    for a run with masks, one `Region` per region that has a style. `shapes` gives each style
    feature map's (channels, positions) and `content_sizes` each content feature map's number
    of elements; only Symbols need them.
    """
    if isinstance(style_weight, (int, float, np.floating)):
        style_weight = [style_weight] * len(styles)
    elif len(style_weight) != len(styles):
        raise ValueError('%d style weights for %d style layers' % (len(style_weight), len(styles)))
    shapes = shapes or [_shape(y, None) for y in styles]
    content_sizes = content_sizes or [y.size for y in contents]
    content = F.add_n(*[content_loss(y_hat, y, F, size) * content_weight
                        for y_hat, y, size in zip(contents, content_targets, content_sizes)])
    if style_grams and isinstance(style_grams[0], Region):
        style = F.add_n(*[_gram_loss(masked_gram(y_hat, m, area, shape, F), g, shape[0], F) * w
                          for region in style_grams
                          for y_hat, g, (m, area), w, shape in zip(
                              styles, region.grams, region.masks, style_weight, shapes)])
    else:
        style = F.add_n(*[style_loss(y_hat, g, shape, F) * w
                          for y_hat, g, w, shape in zip(styles, style_grams, style_weight,
                                                        shapes)])
    tv = tv_loss(x, F) * tv_weight
    return Losses(content, style, tv, style + content + tv)
