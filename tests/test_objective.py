"""The objective graph (network and losses hybridised together) against the same losses run
as separate NDArray operations after the network: same four numbers, same image gradient."""
import numpy as np
import mxnet as mx
import pytest
from mxnet import autograd

from styletransfer import device
from styletransfer.errors import StyleTransferError
from styletransfer.vgg import features, weights
from styletransfer.settings import Settings
from styletransfer.images import Normalizer
from styletransfer.losses import Region, compute_losses
from styletransfer.gatys.objective import Objective
from styletransfer.gatys.optimise import build_objective, region_targets, targets

CTX = mx.cpu(1)
CONTENT, STYLE = (25,), (0, 5, 10, 19, 28)
# Odd sides: every pooling floors, so the Objective's layer sizes must too.
WIDTH, HEIGHT = 53, 35


@pytest.fixture(scope='module')
def extractor():
    return features.build_extractor(weights.load('random', 28, seed=0), CONTENT, STYLE, CTX)


def picture(seed):
    return np.random.RandomState(seed).randint(0, 256, (HEIGHT, WIDTH, 3)).astype(np.uint8)


def separate(extractor, x, content_targets, style_targets, *weights):
    """The losses and the image gradient, the network's outputs leaving its graph."""
    x = x.copy()
    x.attach_grad()
    with autograd.record():
        contents, styles = extractor.split(extractor(x))
        losses = compute_losses(x, contents, styles, content_targets, style_targets, *weights)
    losses.total.backward()
    return [float(v.asscalar()) for v in losses], x.grad.asnumpy()


def in_graph(objective, x):
    x = x.copy()
    x.attach_grad()
    with autograd.record():
        losses = objective(x)
    losses[-1].backward()
    for value in losses:
        assert value.shape == (1,) and value.context == CTX
    assert x.grad.context == CTX
    return [float(v.asscalar()) for v in losses], x.grad.asnumpy()


def assert_same(got, expected):
    (values, grad), (want_values, want_grad) = got, expected
    np.testing.assert_allclose(values, want_values, rtol=1e-4)
    assert np.abs(grad - want_grad).max() <= 1e-4 * np.abs(want_grad).max()
    assert np.abs(want_grad).max() > 0


@pytest.mark.parametrize('style_weight', [1e3, (0.0, 2e3, 1e3, 5e2, 3e3)])
def test_graph_equals_separate_losses_and_gradient(extractor, style_weight):
    norm = Normalizer(CTX)
    content_x, contents, grams = targets(extractor, norm, picture(0), picture(1), WIDTH, HEIGHT)
    x = norm.preprocess(picture(2), WIDTH, HEIGHT)
    weights_ = (1.5, style_weight, 10.0)
    objective = Objective(extractor, contents, grams, *weights_)
    objective.hybridize(static_alloc=True, static_shape=True)
    expected = separate(extractor, x, contents, grams, *weights_)
    assert_same(in_graph(objective, x), expected)
    # A second call reuses the graph's memory; the numbers must not go stale.
    y = norm.preprocess(picture(3), WIDTH, HEIGHT)
    assert_same(in_graph(objective, y), separate(extractor, y, contents, grams, *weights_))
    assert in_graph(objective, y)[0] != expected[0]


def test_graph_with_masks_equals_separate_losses(extractor):
    norm = Normalizer(CTX)
    left = np.zeros((HEIGHT, WIDTH), np.float32)
    left[:, :WIDTH // 2] = 1
    regions = [(left, [(picture(4), 1.0)]), (1 - left, [(picture(5), 0.6), (picture(6), 0.4)])]
    content_x, contents, out = region_targets(extractor, norm, picture(0), regions, WIDTH,
                                              HEIGHT)
    assert len(out) == 2 and isinstance(out[0], Region)
    x = norm.preprocess(picture(2), WIDTH, HEIGHT)
    objective = build_objective(extractor, contents, out, Settings())
    assert_same(in_graph(objective, x),
                separate(extractor, x, contents, out, 1.0, Settings().layer_style_weights(5),
                         10.0))


def test_bfloat16_network_inside_the_graph(extractor):
    if not device.bfloat16_supported():
        # No bfloat16 kernels on this CPU: a run asking for them is refused up front.
        with pytest.raises(StyleTransferError, match='AVX-512'):
            device.check_dtype('bfloat16', CTX)
        return
    bf16 = features.build_extractor(weights.load('random', 28, seed=0), CONTENT, STYLE, CTX,
                                    dtype='bfloat16')
    norm = Normalizer(CTX)
    _, contents, grams = targets(extractor, norm, picture(0), picture(1), WIDTH, HEIGHT)
    x = norm.preprocess(picture(2), WIDTH, HEIGHT)
    config = Settings()
    values, grad = in_graph(build_objective(bf16, contents, grams, config), x)
    want, want_grad = in_graph(build_objective(extractor, contents, grams, config), x)
    # bfloat16 keeps 8 bits of mantissa: close to float32, but not equal to it.
    np.testing.assert_allclose(values, want, rtol=0.05)
    assert values != want
    cosine = (grad * want_grad).sum() / np.linalg.norm(grad) / np.linalg.norm(want_grad)
    assert cosine > 0.95
