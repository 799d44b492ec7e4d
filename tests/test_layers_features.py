"""The layer table, and the frozen hybridised VGG-19 extractor on random weights."""
import mxnet as mx
import numpy as np
import pytest
from mxnet.gluon import nn
from mxnet.gluon.model_zoo import vision

from styletransfer.vgg import layers, weights
from styletransfer.errors import StyleTransferError
from styletransfer.vgg.features import build_extractor

CTX = mx.cpu(1)
BOOK_CONTENT, BOOK_STYLE = (25,), (0, 5, 10, 19, 28)


# --------------------------------------------------------------------------------- the table

@pytest.mark.parametrize('name, index', [
    ('conv1_1', 0), ('relu1_1', 1), ('conv1_2', 2), ('relu1_2', 3), ('pool1', 4),
    ('conv2_1', 5), ('relu2_1', 6), ('pool2', 9), ('conv3_1', 10), ('conv3_4', 16),
    ('pool3', 18), ('conv4_1', 19), ('conv4_2', 21), ('relu4_2', 22), ('conv4_4', 25),
    ('relu4_4', 26), ('pool4', 27), ('conv5_1', 28), ('relu5_1', 29), ('conv5_4', 34),
    ('pool5', 36)])
def test_table_names_and_indices(name, index):
    assert layers.NAMES[name] == index
    assert layers.INDEX_NAMES[index] == name
    assert layers.resolve(name) == (index,)


def test_table_matches_gluon_vgg19_features():
    net = vision.vgg19()
    for name, index, shape in layers.TABLE:
        layer = net.features[index]
        if name.startswith('conv'):
            assert isinstance(layer, nn.Conv2D), name
            assert layer._channels == shape[0]
            assert shape[2:] == (3, 3)
        elif name.startswith('relu'):
            assert isinstance(layer, nn.Activation), name
        else:
            assert isinstance(layer, nn.MaxPool2D), name
    assert len(layers.TABLE) == 37                      # 16 convs, 16 relus, 5 pools
    assert sum(1 for n, _, _ in layers.TABLE if n.startswith('conv')) == 16
    assert isinstance(net.features[37], nn.Dense)       # the table stops before the classifier


def test_conv_shapes_chain_input_channels():
    assert layers.CONV_SHAPES[0] == (64, 3, 3, 3)
    assert layers.CONV_SHAPES[5] == (128, 64, 3, 3)
    assert layers.CONV_SHAPES[10] == (256, 128, 3, 3)
    assert layers.CONV_SHAPES[19] == (512, 256, 3, 3)
    assert layers.CONV_SHAPES[25] == (512, 512, 3, 3)
    assert layers.CONV_SHAPES[28] == (512, 512, 3, 3)


def test_book_defaults_are_the_named_layers():
    assert layers.BOOK_CONTENT_LAYERS == layers.resolve('conv4_4')
    assert layers.BOOK_STYLE_LAYERS == layers.resolve('conv1_1,conv2_1,conv3_1,conv4_1,conv5_1')
    assert layers.describe((25, 0)) == 'conv4_4 (25), conv1_1 (0)'


@pytest.mark.parametrize('spec, expected', [
    ('conv4_2,0', (21, 0)),
    (' CONV1_1 , 5 ,', (0, 5)),
    ('0,5,10,19,28', (0, 5, 10, 19, 28)),
    ([25, 'conv5_1'], (25, 28)),
    ('relu3_1,pool2', (11, 9)),
    ('36', (36,)),
])
def test_resolve(spec, expected):
    assert layers.resolve(spec) == expected


@pytest.mark.parametrize('spec, words', [
    ('37', '37'),                 # the classifier's Dense, not a feature layer
    ('99', '99'),
    ('conv6_1', 'conv6_1'),
    ('conv4_5', 'conv4_5'),
    ('-1', '-1'),
    ('fc6', 'fc6'),
    ('', 'no layers'),
    (' , ', 'no layers'),
])
def test_resolve_refuses(spec, words):
    with pytest.raises(StyleTransferError) as info:
        layers.resolve(spec)
    assert words in str(info.value)


def test_min_side():
    assert layers.min_side((28,)) == 16          # four poolings before conv5_1
    assert layers.min_side(BOOK_CONTENT + BOOK_STYLE) == 16
    assert layers.min_side((0,)) == 1
    assert layers.min_side((5,)) == 2
    assert layers.min_side((10, 0)) == 4
    assert layers.min_side((25,)) == 8
    assert layers.min_side((36,)) == 32          # pool5 itself halves once more


# ---------------------------------------------------------------------------- random weights

def test_random_weights_are_deterministic_for_a_seed_and_differ_between_seeds():
    a = weights.load('random', 28, seed=3)
    b = weights.load('random', 28, seed=3)
    c = weights.load('random', 28, seed=4)
    assert not a.pretrained
    assert 'random' in a.description and '3' in a.description
    conv_indices = [i for i in layers.CONV_SHAPES if i <= 28]
    assert sorted(a.convs) == conv_indices == [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28]
    for i in conv_indices:
        w, bias = a.convs[i]
        assert w.shape == layers.CONV_SHAPES[i]
        assert bias.shape == (layers.CONV_SHAPES[i][0],)
        assert w.context == mx.cpu()
        np.testing.assert_array_equal(w.asnumpy(), b.convs[i][0].asnumpy())
        np.testing.assert_array_equal(bias.asnumpy(), b.convs[i][1].asnumpy())
        assert not np.allclose(w.asnumpy(), c.convs[i][0].asnumpy())
        assert w.asnumpy().std() > 0
    # only the layers up to `deepest`
    assert sorted(weights.load('random', 10, seed=3).convs) == [0, 2, 5, 7, 10]


# ---------------------------------------------------------------------------------- extractor

@pytest.fixture(scope='module')
def random28():
    return weights.load('random', 28, seed=11)


@pytest.fixture(scope='module')
def extractor(random28):
    return build_extractor(random28, BOOK_CONTENT, BOOK_STYLE, CTX)


@pytest.fixture(scope='module')
def image():
    rng = np.random.RandomState(0)
    return mx.nd.array(rng.randn(1, 3, 48, 64).astype(np.float32), ctx=CTX)


def test_extractor_output_shapes_and_order(extractor, image):
    outputs = extractor(image)
    assert [o.shape for o in outputs] == [
        (1, 512, 6, 8),                                   # conv4_4 (content)
        (1, 64, 48, 64), (1, 128, 24, 32), (1, 256, 12, 16), (1, 512, 6, 8), (1, 512, 3, 4)]
    assert all(o.context == CTX for o in outputs)
    contents, styles = extractor.split(outputs)
    assert len(contents) == 1 and len(styles) == 5
    assert contents[0].shape == (1, 512, 6, 8)
    assert styles[-1].shape == (1, 512, 3, 4)


def test_extractor_is_truncated_frozen_and_on_its_context(extractor, random28):
    assert len(extractor.body) == 29                      # layers 0..28, nothing deeper
    params = extractor.collect_params()
    assert len(list(params.keys())) == 2 * 13             # 13 convs up to conv5_1
    for name, param in params.items():
        assert param.grad_req == 'null', name
        assert param.list_ctx() == [CTX], name
    small = build_extractor(random28, (5,), (0,), CTX)
    assert len(small.body) == 6


def test_extractor_equals_a_plain_layer_by_layer_pass(extractor, random28, image):
    # reference: the model zoo's vgg19().features, not hybridised, weights set by hand, on cpu(0)
    features = vision.vgg19().features
    for i in range(29):
        if i in random28.convs:
            w, b = random28.convs[i]
            layer = features[i]
            layer.weight.shape, layer.bias.shape = w.shape, b.shape
            layer.initialize(ctx=mx.cpu(0))
            layer.weight.set_data(w)
            layer.bias.set_data(b)
    x = image.as_in_context(mx.cpu(0))
    expected = {}
    for i in range(29):
        x = features[i](x)
        expected[i] = x.asnumpy()
    outputs = extractor(image)
    for got, index in zip(outputs, BOOK_CONTENT + BOOK_STYLE):
        want = expected[index]
        assert got.shape == want.shape
        scale = np.abs(want).max()
        assert scale > 0
        np.testing.assert_allclose(got.asnumpy(), want, rtol=1e-5, atol=1e-5 * scale)
    # the outputs are pre-ReLU: some values are negative
    assert (outputs[0].asnumpy() < 0).any()


def test_extractor_has_no_weight_gradients(extractor, image):
    x = image.copy()
    x.attach_grad()
    with mx.autograd.record():
        outputs = extractor(x)
        loss = mx.nd.add_n(*[o.square().mean() for o in outputs])
    loss.backward()
    assert float(x.grad.abs().sum().asscalar()) > 0
    for param in extractor.collect_params().values():
        with pytest.raises(Exception):
            param.grad()
