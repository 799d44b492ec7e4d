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
                   F=nd, statistic=None):
    """Weighted content, style and TV terms (each summed over its layers) and their total.

    `style_weight` is a number (the same for every style layer, as in the book) or a sequence
    with one weight per style layer. `style_grams` holds one Gram matrix per style layer, or,
    for a run with masks, one `Region` per region that has a style; with `statistic` (a
    STYLE_LOSSES entry) it holds that loss's target tuple per style layer instead. `shapes`
    gives each style feature map's (channels, positions) and `content_sizes` each content
    feature map's number of elements; only Symbols need them.
    """
    if isinstance(style_weight, (int, float, np.floating)):
        style_weight = [style_weight] * len(styles)
    elif len(style_weight) != len(styles):
        raise ValueError('%d style weights for %d style layers' % (len(style_weight), len(styles)))
    shapes = shapes or [_shape(y, None) for y in styles]
    content_sizes = content_sizes or [y.size for y in contents]
    content = F.add_n(*[content_loss(y_hat, y, F, size) * content_weight
                        for y_hat, y, size in zip(contents, content_targets, content_sizes)])
    if statistic is not None:
        style = F.add_n(*[F.reshape(statistic.loss(y_hat, target, shape, F), shape=(1,)) * w
                          for y_hat, target, w, shape in zip(styles, style_grams, style_weight,
                                                             shapes)])
    elif style_grams and isinstance(style_grams[0], Region):
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


# ------------------------------------------------------------- style losses as statistics
#
# Li et al. 2017 ("Demystifying Neural Style Transfer") read the Gram loss as a maximum mean
# discrepancy (MMD) between the two sets of feature vectors, one C-dimensional vector per
# position, under the kernel (x.y)^2; other kernels and the per-channel mean and standard
# deviation give other style losses. These work on batches: feature maps are N x C x H x W with
# N >= 1, every statistic is per sample, and every loss is the mean over the batch of the
# per-sample loss. A target's leading axis is 1 (one style for the whole batch) or N (one style
# per sample, as conditional instance norm trains), broadcast either way.
#
# Each loss is a pair of functions:
#   target(y, shape=None, F=nd, **options) -> tuple of arrays, the statistics of the style
#       feature maps `y`, computed once per style;
#   loss(y_hat, target, shape=None, F=nd, **options) -> array of shape (1,).
# `shape` is the maps' (channels, positions) (positions = H*W); NDArrays give it themselves,
# Symbols need it. Options must be the same for a style's target and its loss.

STD_EPS = 1e-5          # added to the variance under the square root (AdaIN's and PyTorch's)
RFF_FEATURES = 256      # random Fourier features of the Gaussian kernel's estimator
RFF_SEED = 0            # fixed, so a style's target and its loss use the same projection
MEDIAN_SAMPLE = 512     # positions the bandwidth's median heuristic looks at, at most


def _batch_shape(x, shape):
    """(channels, positions) of an N x C x H x W map."""
    return shape or (x.shape[1], x.shape[2] * x.shape[3])


def _rows(x, F):
    """N x C x H x W -> N x C x positions, without reading shapes (0 keeps an axis)."""
    return F.reshape(x, shape=(0, 0, -1))


def _batch_gram(x, shape, F):
    """Per sample, X X^T / positions: N x C x C, the second moments of the features.

    As in `_self_product`, the gradient flows through one side only and is doubled: exact
    for the symmetric upstream gradients every loss here gives (gram_loss, mmd_poly_loss), and
    one batch_dot fewer per backward. Training a TransformerNet at 256x256, batch 4, with the
    four default style layers: a step took 11.98-16.78 s instead of 16.66-22.89 s (pairs
    measured alternately, 2 threads, busy machine); the value is unchanged (2p - p == p)."""
    rows = _rows(x, F)
    product = F.batch_dot(rows, F.BlockGrad(rows), transpose_b=True)
    return (2 * product - F.BlockGrad(product)) / shape[1]


def _channel_means(x, F):
    return F.mean(x, axis=(2, 3))                                   # N x C


def channel_mean_std(x, F=nd, unbiased=False, eps=STD_EPS):
    """Per sample and channel of N x C x H x W features, over the H*W positions: (mean, std),
    each N x C, with std = sqrt(variance + eps). The variance divides the sum of squared
    deviations by H*W (the population variance), or by H*W - 1 with `unbiased`, as AdaIN's
    calc_mean_std does (torch's var). H*W is then counted in the graph (a sum of ones over one
    channel), so Symbols need no shape. The one implementation of these statistics: AdaIN's
    `fast.adain.mean_std` is this, unbiased."""
    mean = _channel_means(x, F)
    centred = F.broadcast_sub(x, F.reshape(mean, shape=(0, 0, 1, 1)))
    if unbiased:
        count = F.sum(F.ones_like(F.slice_axis(x, axis=1, begin=0, end=1)), axis=(2, 3))
        variance = F.broadcast_div(F.sum(F.square(centred), axis=(2, 3)), count - 1)
    else:
        variance = F.mean(F.square(centred), axis=(2, 3))
    return mean, F.sqrt(variance + eps)


def _mean_over_batch_of_sums(d, F):
    """Mean over axis 0 of each sample's sum of squares of `d` (N x ...)."""
    return F.mean(F.sum(F.square(F.reshape(d, shape=(0, -1))), axis=1))


# 'gram': the book's loss, batched. For N = 1 these are `gram` and `style_loss` above.

def gram_target(y, shape=None, F=nd):
    """(G,): per sample, the book's Gram matrix X X^T / (C * positions), N x C x C."""
    shape = _batch_shape(y, shape)
    return (_batch_gram(y, shape, F) / shape[0],)


def gram_loss(y_hat, target, shape=None, F=nd):
    """Mean over the batch of the book's style loss: the mean squared difference of the Gram
    matrices (over C x C entries)."""
    shape = _batch_shape(y_hat, shape)
    return F.mean(F.square(F.broadcast_sub(gram_target(y_hat, shape, F)[0], target[0])))


# 'mean-std': the first two moments of each channel (the statistics AdaIN aligns).

def mean_std_target(y, shape=None, F=nd, unbiased=False):
    """(mean, std), each N x C, per sample and channel over the H*W positions. The std is the
    population one (divided by H*W, not H*W - 1) with STD_EPS under the root:
    std = sqrt(mean((x - mean)^2) + 1e-5), so it has a gradient at constant channels; with
    `unbiased`, divided by H*W - 1 (AdaIN's: see channel_mean_std)."""
    return channel_mean_std(y, F, unbiased)


def mean_std_loss(y_hat, target, shape=None, F=nd, unbiased=False):
    """Per sample, mean over channels of (mean - mean_s)^2 plus mean over channels of
    (std - std_s)^2; then the mean over the batch. Over a batch that is the mean over N x C
    entries of each square, which is Huang and Belongie's style loss at one layer (their
    code's MSE of the means plus MSE of the stds), with `unbiased` as their std is."""
    mean, std = channel_mean_std(y_hat, F, unbiased)
    return (F.mean(F.square(F.broadcast_sub(mean, target[0])))
            + F.mean(F.square(F.broadcast_sub(std, target[1]))))


# 'mmd-linear': k(x, y) = x.y, whose MMD^2 is the squared distance of the mean vectors.

def mmd_linear_target(y, shape=None, F=nd):
    """(mean,): per sample, the mean feature vector, N x C."""
    return (_channel_means(y, F),)


def mmd_linear_loss(y_hat, target, shape=None, F=nd):
    """MMD^2 under the linear kernel, ||mean(x) - mean(s)||^2 summed over channels (no
    division by C), averaged over the batch."""
    return _mean_over_batch_of_sums(F.broadcast_sub(_channel_means(y_hat, F), target[0]), F)


# 'mmd-poly': k(x, y) = (x.y + c)^2.
#
# With the biased (V-statistic) estimate, the means over all pairs of positions,
#   MMD^2 = ||X X^T / P - S S^T / Q||_F^2 + 2c ||mean(x) - mean(s)||^2
# (P, Q the numbers of positions; the c^2 terms cancel), so it needs only the second moments
# and the means, never the P x Q kernel matrix. With c = 0 it is the Gram loss: the book's
# style_loss divides the Gram matrices by C*P and averages over C*C entries, so
#   style_loss = MMD^2_poly(c=0) / C^4.

def mmd_poly_target(y, shape=None, F=nd, c=0.0):
    """(second moments X X^T / positions (N x C x C),) and, when c is not 0, the mean (N x C)
    after them (with c = 0 it would be an input the graph never uses)."""
    shape = _batch_shape(y, shape)
    moments = (_batch_gram(y, shape, F),)
    return moments + (_channel_means(y, F),) if c else moments


def mmd_poly_loss(y_hat, target, shape=None, F=nd, c=0.0):
    """MMD^2 under (x.y + c)^2, as the V-statistic over all pairs of positions (no
    normalisation beyond it), averaged over the batch. c = 0 is Li et al.'s choice."""
    shape = _batch_shape(y_hat, shape)
    loss = _mean_over_batch_of_sums(
        F.broadcast_sub(_batch_gram(y_hat, shape, F), target[0]), F)
    if c:
        loss = loss + 2 * c * _mean_over_batch_of_sums(
            F.broadcast_sub(_channel_means(y_hat, F), target[1]), F)
    return loss


# 'mmd-gauss': k(x, y) = exp(-||x - y||^2 / (2 sigma^2)).
#
# Estimator: random Fourier features (Rahimi and Recht 2007). With the rows of W drawn from
# N(0, I) and b from U[0, 2 pi), phi(x) = sqrt(2/D) cos(W x / sigma + b) has
# E[phi(x).phi(y)] = k(x, y), so
#   MMD^2 (V-statistic over all pairs) ~ ||mean phi(x) - mean phi(s)||^2,
# exact in expectation over W and b apart from the pairs' own mean, with a spread that falls as
# 1/sqrt(D). It costs one 1x1 convolution to D channels, where the exact pairwise kernel at
# conv1_1 on 450x300 (135,000 positions) would need 1.8e10 kernel values. W and b come from
# RandomState(seed), the same for a style's target and for the loss (they travel in the target
# tuple so a hybridised graph receives them as inputs).
#
# Bandwidth: the median heuristic on the style's features: sigma = the median Euclidean
# distance between distinct positions of the style map, over at most MEDIAN_SAMPLE positions
# drawn without replacement with the same seed; per style sample and per layer. The features
# being stylised never change it.

def rff_projection(channels, num_features=RFF_FEATURES, seed=RFF_SEED):
    """(W, b): D x C standard normal and D uniform in [0, 2 pi), float32, from `seed`."""
    rng = np.random.RandomState(seed)
    weights = rng.standard_normal((num_features, channels)).astype(np.float32)
    phases = rng.uniform(0, 2 * np.pi, num_features).astype(np.float32)
    return weights, phases


def median_bandwidth(features, seed=RFF_SEED, sample=MEDIAN_SAMPLE):
    """The median heuristic for one sample's C x P NumPy features: the median distance between
    distinct positions (over at most `sample` of them). Falls back to 1 when the features are
    all equal, where any bandwidth gives the same (zero) distances."""
    features = np.asarray(features, np.float64)
    positions = features.shape[1]
    if positions > sample:
        keep = np.random.RandomState(seed).choice(positions, sample, replace=False)
        features = features[:, keep]
    points = features.T
    squared = np.sum(points ** 2, axis=1)
    distances = squared[:, None] + squared[None, :] - 2 * points @ points.T
    upper = np.triu_indices(points.shape[0], k=1)
    median = float(np.median(np.sqrt(np.maximum(distances[upper], 0))))
    return median if median > 0 else 1.0


def _mean_rff(y, inverse_bandwidth, weights, phases, num_features, F):
    projected = F.Convolution(y, F.reshape(weights, shape=(0, 0, 1, 1)), kernel=(1, 1),
                              num_filter=num_features, no_bias=True)
    angles = F.broadcast_add(
        F.broadcast_mul(projected, F.reshape(inverse_bandwidth, shape=(0, 1, 1, 1))),
        F.reshape(phases, shape=(1, -1, 1, 1)))
    return F.mean(F.cos(angles), axis=(2, 3)) * np.sqrt(2.0 / num_features)


def mmd_gauss_target(y, shape=None, F=nd, num_features=RFF_FEATURES, seed=RFF_SEED):
    """(mean phi (N x D), 1/sigma (N x 1), W (D x C), b (D,)) of NDArray style maps. Eager
    only (the median needs the values): a style's target is computed once, before any graph."""
    if F is not nd:
        raise TypeError('mmd_gauss_target needs NDArrays: the bandwidth is a median of values')
    channels = y.shape[1]
    flat = y.reshape((y.shape[0], channels, -1)).asnumpy()
    inverse = np.array([[1.0 / median_bandwidth(sample, seed)] for sample in flat], np.float32)
    weights, phases = rff_projection(channels, num_features, seed)
    ctx = y.context
    inverse, weights, phases = (nd.array(a, ctx=ctx) for a in (inverse, weights, phases))
    return _mean_rff(y, inverse, weights, phases, num_features, nd), inverse, weights, phases


def mmd_gauss_loss(y_hat, target, shape=None, F=nd, num_features=RFF_FEATURES,
                   seed=RFF_SEED):
    """The random-Fourier-feature estimate of MMD^2 under the Gaussian kernel whose bandwidth
    the target carries, averaged over the batch."""
    mean_phi, inverse, weights, phases = target
    estimate = _mean_rff(y_hat, inverse, weights, phases, num_features, F)
    return _mean_over_batch_of_sums(F.broadcast_sub(estimate, mean_phi), F)


StyleLoss = namedtuple('StyleLoss', 'target loss')

# The names `--style-loss` takes.
STYLE_LOSSES = {
    'gram': StyleLoss(gram_target, gram_loss),
    'mean-std': StyleLoss(mean_std_target, mean_std_loss),
    'mmd-linear': StyleLoss(mmd_linear_target, mmd_linear_loss),
    'mmd-poly': StyleLoss(mmd_poly_target, mmd_poly_loss),
    'mmd-gauss': StyleLoss(mmd_gauss_target, mmd_gauss_loss),
}
