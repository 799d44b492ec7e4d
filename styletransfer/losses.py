"""The book's losses as pure functions over NDArrays; weights are passed in, nothing is global."""
from collections import namedtuple

import numpy as np
from mxnet import nd

Losses = namedtuple('Losses', 'content style tv total')
# One region of a spatially controlled run: its style's Gram matrices and, per style layer,
# (mask resized to that layer, the mask's sum).
Region = namedtuple('Region', 'grams masks')


def content_loss(y_hat, y):
    """Mean squared difference of two feature maps."""
    return (y_hat - y).square().mean()


def gram(x):
    """Gram matrix of a 1xCxHxW feature map, divided by C*H*W as in the book."""
    channels = x.shape[1]
    n = x.size // channels
    x = x.reshape((channels, n))
    return nd.dot(x, x, transpose_b=True) / (channels * n)


def masked_gram(x, mask, mask_sum):
    """Gram matrix of the features under a 1x1xHxW mask (Gatys et al. 2017's spatial control),
    divided by C times the mask's area: with a mask of ones it is `gram(x)`."""
    channels = x.shape[1]
    x = nd.broadcast_mul(x, mask).reshape((channels, -1))
    return nd.dot(x, x, transpose_b=True) / (channels * mask_sum)


def style_loss(y_hat, gram_y):
    """Mean squared difference between the Gram matrix of `y_hat` and a target Gram matrix."""
    return (gram(y_hat) - gram_y).square().mean()


def tv_loss(x):
    """Total variation: half the sum of mean absolute vertical and horizontal differences."""
    return 0.5 * ((x[:, :, 1:, :] - x[:, :, :-1, :]).abs().mean()
                  + (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean())


def compute_losses(x, contents, styles, content_targets, style_grams,
                   content_weight, style_weight, tv_weight):
    """Weighted content, style and TV terms (each summed over its layers) and their total.

    `style_weight` is a number (the same for every style layer, as in the book) or a sequence
    with one weight per style layer. `style_grams` holds one Gram matrix per style layer, or,
    for a run with masks, one `Region` per region that has a style.
    """
    if isinstance(style_weight, (int, float, np.floating)):
        style_weight = [style_weight] * len(styles)
    elif len(style_weight) != len(styles):
        raise ValueError('%d style weights for %d style layers' % (len(style_weight), len(styles)))
    content = nd.add_n(*[content_loss(y_hat, y) * content_weight
                         for y_hat, y in zip(contents, content_targets)])
    if style_grams and isinstance(style_grams[0], Region):
        style = nd.add_n(*[(masked_gram(y_hat, m, area) - g).square().mean() * w
                           for region in style_grams
                           for y_hat, g, (m, area), w in zip(styles, region.grams, region.masks,
                                                             style_weight)])
    else:
        style = nd.add_n(*[style_loss(y_hat, g) * w
                           for y_hat, g, w in zip(styles, style_grams, style_weight)])
    tv = tv_loss(x) * tv_weight
    return Losses(content, style, tv, style + content + tv)
