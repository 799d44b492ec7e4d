"""The book's losses as pure functions over NDArrays; weights are passed in, nothing is global."""
from collections import namedtuple

import numpy as np
from mxnet import nd

Losses = namedtuple('Losses', 'content style tv total')


def content_loss(y_hat, y):
    """Mean squared difference of two feature maps."""
    return (y_hat - y).square().mean()


def gram(x):
    """Gram matrix of a 1xCxHxW feature map, divided by C*H*W as in the book."""
    channels = x.shape[1]
    n = x.size // channels
    x = x.reshape((channels, n))
    return nd.dot(x, x, transpose_b=True) / (channels * n)


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
    with one weight per style layer.
    """
    if isinstance(style_weight, (int, float, np.floating)):
        style_weight = [style_weight] * len(styles)
    elif len(style_weight) != len(styles):
        raise ValueError('%d style weights for %d style layers' % (len(style_weight), len(styles)))
    content = nd.add_n(*[content_loss(y_hat, y) * content_weight
                         for y_hat, y in zip(contents, content_targets)])
    style = nd.add_n(*[style_loss(y_hat, g) * w
                       for y_hat, g, w in zip(styles, style_grams, style_weight)])
    tv = tv_loss(x) * tv_weight
    return Losses(content, style, tv, style + content + tv)
