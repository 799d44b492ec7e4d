"""The book's losses on tiny NDArrays, against values worked by hand or with numpy."""
import numpy as np
import pytest
from mxnet import autograd, nd

from styletransfer.losses import (compute_losses, content_loss, gram, masked_gram, mean_square,
                                  style_loss, tv_loss)


def scalar(x):
    return float(x.asnumpy().reshape(-1)[0])


def np_gram(x):
    c = x.shape[1]
    m = x.reshape(c, -1).astype(np.float64)
    return m @ m.T / (c * m.shape[1])


def np_tv(x):
    x = x.astype(np.float64)
    return 0.5 * (np.abs(np.diff(x, axis=2)).mean() + np.abs(np.diff(x, axis=3)).mean())


# ------------------------------------------------------------------------------- content loss

def test_content_loss_by_hand():
    y_hat = nd.array([1, 2, 3, 4]).reshape((1, 1, 2, 2))
    y = nd.array([0, 2, 5, 1]).reshape((1, 1, 2, 2))
    # differences 1, 0, -2, 3 -> squares 1, 0, 4, 9 -> mean 14 / 4
    assert scalar(content_loss(y_hat, y)) == pytest.approx(3.5, rel=1e-6)


def test_content_loss_is_zero_for_equal_maps_and_symmetric():
    rng = np.random.RandomState(1)
    a, b = rng.randn(1, 3, 4, 5), rng.randn(1, 3, 4, 5)
    assert scalar(content_loss(nd.array(a), nd.array(a))) == 0.0
    expected = ((a - b) ** 2).mean()
    assert scalar(content_loss(nd.array(a), nd.array(b))) == pytest.approx(expected, rel=1e-5)
    assert scalar(content_loss(nd.array(b), nd.array(a))) == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------------------------------------- gram

def test_gram_1x2x1x2_by_hand():
    # X = [[1, 2], [3, 4]] (2 channels, 2 positions); X X^T = [[5, 11], [11, 25]]; / (2*1*2)
    x = nd.array([[[[1, 2]], [[3, 4]]]])
    assert x.shape == (1, 2, 1, 2)
    np.testing.assert_allclose(gram(x).asnumpy(), [[1.25, 2.75], [2.75, 6.25]], rtol=1e-6)


def test_gram_matches_numpy():
    rng = np.random.RandomState(2)
    x = rng.randn(1, 6, 5, 7).astype(np.float32)
    g = gram(nd.array(x))
    assert g.shape == (6, 6)
    np.testing.assert_allclose(g.asnumpy(), np_gram(x), rtol=1e-5, atol=1e-6)
    # divided by c*h*w = 210, not by h*w alone
    assert not np.allclose(g.asnumpy(), np_gram(x) * 6, rtol=1e-3)


# ---------------------------------------------------------------------------------- style loss

def test_style_loss_by_hand():
    y_hat = nd.array([[[[1, 2]], [[3, 4]]]])      # gram [[1.25, 2.75], [2.75, 6.25]]
    target = nd.array([[1, 3], [2, 6]])
    # differences .25, -.25, .75, .25 -> squares sum to .75 -> mean over 4 entries
    assert scalar(style_loss(y_hat, target)) == pytest.approx(0.1875, rel=1e-6)


def test_style_loss_matches_numpy():
    rng = np.random.RandomState(3)
    a, b = rng.randn(1, 4, 3, 5).astype(np.float32), rng.randn(1, 4, 3, 5).astype(np.float32)
    expected = ((np_gram(a) - np_gram(b)) ** 2).mean()
    got = scalar(style_loss(nd.array(a), gram(nd.array(b))))
    assert got == pytest.approx(expected, rel=1e-4)
    assert scalar(style_loss(nd.array(a), gram(nd.array(a)))) == 0.0


# ----------------------------------------------------------------------------------- gradients
# The products behind these losses compute their gradient on one side and double it; these
# check the gradients against the formulas worked by hand, in float64.

def gradient(loss, x):
    x = nd.array(x)
    x.attach_grad()
    with autograd.record():
        value = loss(x)
    value.backward()
    return x.grad.asnumpy()


def test_content_and_mean_square_gradients():
    rng = np.random.RandomState(6)
    a, b = rng.randn(1, 3, 4, 5), rng.randn(1, 3, 4, 5)
    # d/da mean((a - b)^2) = 2 (a - b) / N
    want = 2 * (a - b) / a.size
    np.testing.assert_allclose(gradient(lambda x: content_loss(x, nd.array(b)), a), want,
                               rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(gradient(lambda x: mean_square(x), a), 2 * a / a.size,
                               rtol=1e-4, atol=1e-7)
    assert scalar(mean_square(nd.array(a))) == pytest.approx((a ** 2).mean(), rel=1e-5)


def test_style_loss_gradient():
    rng = np.random.RandomState(7)
    c, h, w = 4, 3, 5
    a, b = rng.randn(1, c, h, w), rng.randn(1, c, h, w)
    # L = mean((G - T)^2), G = Y Y^T / (c n): dL/dY = 4 (G - T) Y / (c^3 n)
    y, n = a.reshape(c, -1), h * w
    want = (4 * (np_gram(a) - np_gram(b)) @ y / (c ** 3 * n)).reshape(a.shape)
    got = gradient(lambda x: style_loss(x, gram(nd.array(b))), a)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)


def test_masked_style_loss_gradient():
    rng = np.random.RandomState(8)
    c, h, w = 3, 4, 4
    a, b = rng.randn(1, c, h, w), rng.randn(c, c)
    target = b @ b.T
    mask = np.zeros((1, 1, h, w))
    mask[..., :2, :] = 1
    area = mask.sum()
    # Ym = Y * M, G = Ym Ym^T / (c area): dL/dY = M * 4 (G - T) Ym / (c^3 area)
    ym = (a * mask).reshape(c, -1)
    g = ym @ ym.T / (c * area)
    want = (4 * (g - target) @ ym / (c ** 3 * area)).reshape(a.shape) * mask

    def loss(x):
        return mean_square(masked_gram(x, nd.array(mask), area) - nd.array(target))
    np.testing.assert_allclose(gradient(loss, a), want, rtol=1e-4, atol=1e-7)
    assert np.abs(want).max() > 0


# ------------------------------------------------------------------------------------- TV loss

def test_tv_loss_1x1x2x3_by_hand():
    x = nd.array([[[[1, 2, 4], [3, 7, 5]]]])
    assert x.shape == (1, 1, 2, 3)
    # vertical |2|, |5|, |1| -> mean 8/3; horizontal |1|, |2|, |4|, |-2| -> mean 9/4
    expected = 0.5 * (8 / 3 + 9 / 4)       # = 59/24
    assert scalar(tv_loss(x)) == pytest.approx(expected, rel=1e-6)


def test_tv_loss_matches_numpy_and_is_zero_on_a_constant_image():
    rng = np.random.RandomState(4)
    x = rng.randn(1, 3, 6, 9).astype(np.float32)
    assert scalar(tv_loss(nd.array(x))) == pytest.approx(np_tv(x), rel=1e-5)
    assert scalar(tv_loss(nd.full((1, 3, 4, 4), 7.0))) == 0.0


# ------------------------------------------------------------------------------ compute_losses

@pytest.fixture
def problem():
    rng = np.random.RandomState(5)
    f = lambda *shape: rng.randn(*shape).astype(np.float32)  # noqa: E731
    x = f(1, 3, 6, 8)
    contents = [f(1, 4, 3, 4), f(1, 2, 2, 2)]
    content_targets = [f(1, 4, 3, 4), f(1, 2, 2, 2)]
    styles = [f(1, 3, 6, 8), f(1, 5, 3, 4)]
    style_sources = [f(1, 3, 6, 8), f(1, 5, 3, 4)]
    # independent values: numpy, float64
    expected = {
        'content': [((a - b) ** 2).mean() for a, b in zip(contents, content_targets)],
        'style': [((np_gram(a) - np_gram(b)) ** 2).mean()
                  for a, b in zip(styles, style_sources)],
        'tv': np_tv(x),
    }
    args = (nd.array(x), [nd.array(a) for a in contents], [nd.array(a) for a in styles],
            [nd.array(a) for a in content_targets], [gram(nd.array(a)) for a in style_sources])
    return args, expected


def values(losses):
    return {name: scalar(getattr(losses, name)) for name in ('content', 'style', 'tv', 'total')}


def test_compute_losses_weighted_terms_and_total(problem):
    args, e = problem
    got = values(compute_losses(*args, content_weight=2.0, style_weight=30.0, tv_weight=0.5))
    content = 2.0 * sum(e['content'])
    style = 30.0 * sum(e['style'])
    tv = 0.5 * e['tv']
    assert got['content'] == pytest.approx(content, rel=1e-4)
    assert got['style'] == pytest.approx(style, rel=1e-4)
    assert got['tv'] == pytest.approx(tv, rel=1e-4)
    assert got['total'] == pytest.approx(content + style + tv, rel=1e-4)
    assert got['total'] == pytest.approx(got['content'] + got['style'] + got['tv'], rel=1e-6)


@pytest.mark.parametrize('term', ['content', 'style', 'tv'])
def test_each_term_scales_linearly_with_its_own_weight(problem, term):
    args, _ = problem
    base = {'content_weight': 1.0, 'style_weight': 1.0, 'tv_weight': 1.0}
    one = values(compute_losses(*args, **base))
    scaled = dict(base, **{term + '_weight': 7.0})
    seven = values(compute_losses(*args, **scaled))
    for name in ('content', 'style', 'tv'):
        factor = 7.0 if name == term else 1.0
        assert seven[name] == pytest.approx(factor * one[name], rel=1e-5)
    assert seven['total'] == pytest.approx(one['total'] + 6.0 * one[term], rel=1e-5)
    zero = values(compute_losses(*args, **dict(base, **{term + '_weight': 0.0})))
    assert zero[term] == 0.0


def test_per_layer_style_weights(problem):
    args, e = problem
    got = values(compute_losses(*args, content_weight=1.0, style_weight=[10.0, 0.25],
                                tv_weight=1.0))
    expected = 10.0 * e['style'][0] + 0.25 * e['style'][1]
    assert got['style'] == pytest.approx(expected, rel=1e-4)
    # a list of equal weights gives what the single number gives
    same = values(compute_losses(*args, content_weight=1.0, style_weight=(3.0, 3.0),
                                 tv_weight=1.0))
    single = values(compute_losses(*args, content_weight=1.0, style_weight=3.0, tv_weight=1.0))
    assert same['style'] == pytest.approx(single['style'], rel=1e-6)
    assert same['style'] == pytest.approx(3.0 * sum(e['style']), rel=1e-4)
