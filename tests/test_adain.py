"""AdaIN (fast/adain.py) against an independent NumPy forward pass, on weight files written in the
authors' PyTorch layout (vgg_normalised.pth, decoder.pth) with random values.

The layouts below are facts of the authors' PyTorch port (net.py): plain nn.Sequentials whose
state-dict keys are the positions of their convolutions. They are written out here by hand, not
taken from the module under test, so a wrong index there fails here.
"""
import collections
import os

import mxnet as mx
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from styletransfer.errors import StyleTransferError
from styletransfer.fast import adain

from torch_pickles import Call, state_dict, write_pth

# vgg_normalised: index -> (out, in, kernel); 1x1 preprocessing at 0, relu4_1 is index 30.
ENCODER = collections.OrderedDict([
    (0, (3, 3, 1)), (2, (64, 3, 3)), (5, (64, 64, 3)), (9, (128, 64, 3)), (12, (128, 128, 3)),
    (16, (256, 128, 3)), (19, (256, 256, 3)), (22, (256, 256, 3)), (25, (256, 256, 3)),
    (29, (512, 256, 3))])
POOLS_BEFORE = {9, 16, 29}          # a ceil-mode 2x2 max pooling precedes these convolutions
TAPS = {2: 'relu1_1', 9: 'relu2_1', 16: 'relu3_1', 29: 'relu4_1'}
# decoder: index -> (out, in); every conv after a reflection pad, ReLU after all but 28.
DECODER = collections.OrderedDict([
    (1, (256, 512)), (5, (256, 256)), (8, (256, 256)), (11, (256, 256)), (14, (128, 256)),
    (18, (128, 128)), (21, (64, 128)), (25, (64, 64)), (28, (3, 64))])
UPSAMPLE_AFTER = {1, 14, 21}        # nearest x2 upsampling at Sequential positions 3, 16, 23
EPS = 1e-5

CONTENT_SHAPE = (42, 54)            # odd halvings: 21x27 -> 11x14 -> 6x7 at relu4_1
STYLE_SHAPE = (38, 30)              # 19x15 -> 10x8 -> 5x4


# ------------------------------------------------------------------ the NumPy forward pass

def np_conv(x, weight, bias):
    """'valid' convolution of CxHxW by OxCxkxk, in float64."""
    k = weight.shape[-1]
    windows = sliding_window_view(x, (k, k), axis=(1, 2))          # C x H' x W' x k x k
    out = np.tensordot(windows, weight, axes=([0, 3, 4], [1, 2, 3]))
    return out.transpose(2, 0, 1) + bias[:, None, None]


def np_reflect(x):
    return np.pad(x, ((0, 0), (1, 1), (1, 1)), mode='reflect')


def np_pool_ceil(x):
    c, h, w = x.shape
    padded = np.full((c, h + h % 2, w + w % 2), -np.inf)
    padded[:, :h, :w] = x
    return padded.reshape(c, padded.shape[1] // 2, 2, padded.shape[2] // 2, 2).max(axis=(2, 4))


def np_encode(x, weights):
    """{relu name: features} of a CxHxW picture through vgg_normalised up to relu4_1."""
    out = {}
    x = np_conv(x, *weights[0])
    for index in list(ENCODER)[1:]:
        if index in POOLS_BEFORE:
            x = np_pool_ceil(x)
        x = np.maximum(np_conv(np_reflect(x), *weights[index]), 0)
        if index in TAPS:
            out[TAPS[index]] = x
    return out


def np_decode(x, weights):
    for index in DECODER:
        x = np_conv(np_reflect(x), *weights[index])
        if index != 28:
            x = np.maximum(x, 0)
        if index in UPSAMPLE_AFTER:
            x = x.repeat(2, axis=1).repeat(2, axis=2)
    return x


def np_stats(feat):
    flat = feat.reshape(feat.shape[0], -1)
    return flat.mean(axis=1), np.sqrt(flat.var(axis=1, ddof=1) + EPS)


def np_adain(content, mean, std):
    c_mean, c_std = np_stats(content)
    return ((content - c_mean[:, None, None]) / c_std[:, None, None] * std[:, None, None]
            + mean[:, None, None])


# ----------------------------------------------------------------------------- fixtures

def random_conv(rng, out, channels, kernel):
    # He scaling keeps activations of order one through the eighteen layers
    weight = rng.standard_normal((out, channels, kernel, kernel)) * np.sqrt(2 / (channels * kernel
                                                                              * kernel))
    return weight.astype(np.float32), (rng.standard_normal(out) * 0.1).astype(np.float32)


@pytest.fixture(scope='module')
def encoder_weights():
    rng = np.random.default_rng(1)
    return {i: random_conv(rng, *shape) for i, shape in ENCODER.items()}


@pytest.fixture(scope='module')
def decoder_weights():
    rng = np.random.default_rng(2)
    return {i: random_conv(rng, out, channels, 3) for i, (out, channels) in DECODER.items()}


def as_state(weights, extra=()):
    arrays = collections.OrderedDict()
    for index, (weight, bias) in weights.items():
        arrays['%d.weight' % index], arrays['%d.bias' % index] = weight, bias
    arrays.update(extra)
    return arrays


@pytest.fixture(scope='module')
def files(encoder_weights, decoder_weights, tmp_path_factory):
    folder = tmp_path_factory.mktemp('adain')
    # the real vgg_normalised.pth goes on to relu5_4; one of those later layers stands for them
    later = random_conv(np.random.default_rng(3), 512, 512, 3)
    encoder = write_pth(str(folder / 'vgg_normalised.pth'),
                        state_dict(as_state(encoder_weights, {'32.weight': later[0],
                                                              '32.bias': later[1]})), 'zip')
    decoder = write_pth(str(folder / 'decoder.pth'), state_dict(as_state(decoder_weights)),
                        'legacy')
    return encoder, decoder


@pytest.fixture(scope='module')
def net(files):
    encoder, decoder = files
    return adain.AdaIN(adain.load_encoder(encoder), adain.load_decoder(decoder))


def picture(seed, shape):
    return np.random.default_rng(seed).uniform(0, 1, (3,) + shape)


@pytest.fixture(scope='module')
def pictures():
    return {'content': picture(10, CONTENT_SHAPE), 'style': picture(11, STYLE_SHAPE),
            'style2': picture(12, (33, 41))}


def nd(array):
    return mx.nd.array(array[None], dtype='float32')


def assert_close(got, expected, rtol=2e-4):
    got = got.asnumpy() if hasattr(got, 'asnumpy') else got
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


def one_line(error):
    message = str(error.value)
    assert '\n' not in message
    return message


# ---------------------------------------------------------------------------- layouts

def test_layouts_are_the_authors_sequentials():
    assert [index for _, index in adain.ENCODER_SOURCE] == list(ENCODER)
    assert [shape for _, shape in adain.ENCODER_SHAPES] == [
        (out, channels, k, k) for out, channels, k in ENCODER.values()]
    assert [p.key for p in adain.DECODER_SOURCE] == [
        '%d.%s' % (i, kind) for i in DECODER for kind in ('weight', 'bias')]
    assert [p.shape for p in adain.DECODER_SOURCE[::2]] == [
        (out, channels, 3, 3) for out, channels in DECODER.values()]


def test_feature_sizes_round_up_or_down_with_the_pooling():
    assert adain.feature_size('vgg_normalised', 42, 54) == (6, 7)
    assert adain.feature_size('vgg19', 42, 54) == (5, 6)
    assert adain.feature_size('vgg_normalised', 512, 512) == (64, 64)


# ------------------------------------------------------------------------ statistics

def test_mean_std_is_the_unbiased_std_plus_eps_by_hand():
    feat = mx.nd.array([[[[1, 2], [3, 4]], [[0, 0], [0, 6]]]])
    mean, std = adain.mean_std(feat)
    assert mean.shape == std.shape == (1, 2, 1, 1)
    np.testing.assert_allclose(mean.asnumpy().ravel(), [2.5, 1.5], rtol=1e-6)
    # sums of squared deviations 5 and 27 over n - 1 = 3
    np.testing.assert_allclose(std.asnumpy().ravel(), np.sqrt([5 / 3 + EPS, 9 + EPS]),
                               rtol=1e-6)


def test_the_functions_trace_as_symbols():
    rng = np.random.default_rng(4)
    c, means, stds = rng.standard_normal((1, 5, 3, 4)), rng.random((2, 5)), rng.random((2, 5))
    names = ('c', 'm', 's', 'w', 'a')
    c_, m_, s_, w_, a_ = [mx.sym.var(n) for n in names]
    graph = adain.blend(adain.adain_mix(c_, m_, s_, w_, F=mx.sym), c_, a_, F=mx.sym)
    values = dict(zip(names, [c, means, stds, np.array([1.0, 3.0]), np.array([0.5])]))
    out = graph.eval(ctx=mx.cpu(), **{k: mx.nd.array(v) for k, v in values.items()})[0]
    expected = 0.5 * (0.25 * np_adain(c[0], means[0], stds[0])
                      + 0.75 * np_adain(c[0], means[1], stds[1])) + 0.5 * c[0]
    assert_close(out[0], expected, rtol=1e-5)


def test_encoder_returns_the_four_taps(net, encoder_weights, pictures):
    got = net.encoder(nd(pictures['content']))
    expected = np_encode(pictures['content'], encoder_weights)
    assert len(got) == 4
    for feat, name in zip(got, adain.ENCODER_OUTPUTS):
        assert_close(feat[0], expected[name])
    assert got[-1].shape == (1, 512, 6, 7)


def test_style_is_encoded_once_into_its_statistics(net, encoder_weights, pictures):
    style = net.encode_style(nd(pictures['style']))
    mean, std = np_stats(np_encode(pictures['style'], encoder_weights)['relu4_1'])
    assert style.encoder == 'vgg_normalised'
    assert_close(style.mean, mean)
    assert_close(style.std, std)


# ---------------------------------------------------------------------- whole pictures

@pytest.mark.parametrize('alpha', [1.0, 0.5])
def test_stylised_picture_matches_numpy(net, encoder_weights, decoder_weights, pictures, alpha):
    content = np_encode(pictures['content'], encoder_weights)['relu4_1']
    style = np_encode(pictures['style'], encoder_weights)['relu4_1']
    target = alpha * np_adain(content, *np_stats(style)) + (1 - alpha) * content
    decoded = np_decode(target, decoder_weights)
    assert decoded.shape == (3, 48, 56)
    # the decoder gives 8 x 6 by 8 x 7; the picture is cropped back to the content's 42x54
    expected = decoded[:, :42, :54]
    got = net.stylise(nd(pictures['content']), net.encode_style(nd(pictures['style'])),
                      alpha=alpha)
    assert_close(got[0], expected)


def test_alpha_zero_decodes_the_content_features(net, encoder_weights, decoder_weights,
                                                 pictures):
    content = np_encode(pictures['content'], encoder_weights)['relu4_1']
    got = net.stylise(nd(pictures['content']), net.encode_style(nd(pictures['style'])),
                      alpha=0)
    assert_close(got[0], np_decode(content, decoder_weights)[:, :42, :54])
    direct = net.decoder(net.encoder(nd(pictures['content']))[-1])
    assert_close(got, direct.asnumpy()[:, :, :42, :54], rtol=1e-5)


@pytest.mark.parametrize('weights, shares', [([1, 1], (0.5, 0.5)), ([1, 3], (0.25, 0.75))])
def test_style_mix_decodes_the_mixed_adain_outputs(net, encoder_weights, decoder_weights,
                                                   pictures, weights, shares):
    content = np_encode(pictures['content'], encoder_weights)['relu4_1']
    targets = [np_adain(content, *np_stats(np_encode(pictures[name], encoder_weights)
                                           ['relu4_1'])) for name in ('style', 'style2')]
    mixed = shares[0] * targets[0] + shares[1] * targets[1]
    styles = [net.encode_style(nd(pictures[name])) for name in ('style', 'style2')]
    got = net.stylise(nd(pictures['content']), styles, weights=weights)
    assert_close(got[0], np_decode(mixed, decoder_weights)[:, :42, :54])


def test_one_white_mask_is_the_plain_stylisation(net, pictures):
    style = net.encode_style(nd(pictures['style']))
    plain = net.stylise(nd(pictures['content']), style, alpha=0.5)
    masked = net.stylise_masked(nd(pictures['content']), [style], np.ones((1, 6, 7)), alpha=0.5)
    assert_close(masked, plain.asnumpy(), rtol=1e-5)


def test_masked_regions_take_their_own_styles(net, encoder_weights, decoder_weights, pictures):
    content = np_encode(pictures['content'], encoder_weights)['relu4_1']
    stats = [np_stats(np_encode(pictures[name], encoder_weights)['relu4_1'])
             for name in ('style', 'style2')]
    masks = np.zeros((2, 6, 7))
    masks[0, :, :3] = 1             # left three columns
    masks[1, :, 4:] = 1             # right three; column 3 stays unstyled
    expected = content.copy()
    for mask, (mean, std) in zip(masks.astype(bool), stats):
        region = content[:, mask]                                   # C x positions
        c_mean, c_std = region.mean(axis=1), np.sqrt(region.var(axis=1, ddof=1) + EPS)
        expected[:, mask] = ((region - c_mean[:, None]) / c_std[:, None] * std[:, None]
                             + mean[:, None])
    styles = [net.encode_style(nd(pictures[name])) for name in ('style', 'style2')]
    got = net.stylise_masked(nd(pictures['content']), styles, masks)
    assert_close(got[0], np_decode(expected, decoder_weights)[:, :42, :54])


def test_masks_are_averaged_down_to_the_features():
    mask = np.zeros((1, 10, 17))
    mask[0, :, :4] = 1
    mask[0, 9, 16] = 1
    got = adain.masks_to_features(mask, 'vgg_normalised', 10, 17)
    # blocks of 8x8, 8x1, 2x8 and 2x1 pixels (ceil pooling keeps the partial ones)
    np.testing.assert_allclose(got, [[[0.5, 0, 0], [0.5, 0, 0.5]]])
    assert adain.masks_to_features(mask, 'vgg19', 10, 17).shape == (1, 1, 2)


def test_pictures_go_in_as_0_to_1_and_come_out_clipped():
    picture = np.array([[[0, 51, 255], [255, 102, 0]]], np.uint8)           # 1x2x3
    x = adain.to_input(picture)
    assert x.shape == (1, 3, 1, 2)
    np.testing.assert_allclose(x.asnumpy()[0, :, 0, 0], [0, 0.2, 1], rtol=1e-6)
    np.testing.assert_allclose(x.asnumpy()[0, :, 0, 1], [1, 0.4, 0], rtol=1e-6)
    out = mx.nd.array([[[[-0.5, 0.5]], [[1.5, 0.2]], [[1.0, 0.0]]]])       # 1x3x1x2
    np.testing.assert_array_equal(adain.to_picture(out), [[[0, 255, 255], [128, 51, 0]]])


@pytest.mark.filterwarnings('ignore:Cannot decide type')     # SymbolBlock.imports on dtypes
def test_the_stylizer_exports_with_statistics_as_inputs(net, pictures, tmp_path):
    content = nd(pictures['content'])
    style = net.encode_style(nd(pictures['style']))
    expected = net.stylise(content, style, alpha=0.7)
    stylizer = adain.Stylizer(net.encoder, net.decoder)
    stylizer.hybridize()
    inputs = (content, style.mean.reshape((1, -1)), style.std.reshape((1, -1)),
              mx.nd.array([1]), mx.nd.array([0.7]))
    stylizer(*inputs)
    stylizer.export(str(tmp_path / 'adain'))
    names = ['data%d' % i for i in range(5)]
    imported = mx.gluon.SymbolBlock.imports(str(tmp_path / 'adain-symbol.json'), names,
                                            str(tmp_path / 'adain-0000.params'))
    assert_close(imported(*inputs), expected.asnumpy(), rtol=1e-6)


# ------------------------------------------------------------------ files and refusals

def test_decoder_params_round_trip_with_its_encoder(net, tmp_path):
    path = str(tmp_path / 'decoder.params')
    adain.save_decoder(net.decoder, path)
    loaded = adain.load_decoder(path)
    assert loaded.encoder_kind == 'vgg_normalised'
    for a, b in zip(loaded.convs, net.decoder.convs):
        np.testing.assert_array_equal(a.weight.data().asnumpy(), b.weight.data().asnumpy())
        np.testing.assert_array_equal(a.bias.data().asnumpy(), b.bias.data().asnumpy())
    assert [f for f in os.listdir(tmp_path)] == ['decoder.params']  # no temporary left


def test_mismatched_encoder_and_decoder_are_refused(net, files, tmp_path):
    ours = adain.Decoder('vgg19')
    ours.initialize(mx.init.Xavier())
    path = str(tmp_path / 'ours.params')
    adain.save_decoder(ours, path)
    decoder = adain.load_decoder(path)
    assert decoder.encoder_kind == 'vgg19'
    with pytest.raises(StyleTransferError) as error:
        adain.AdaIN(net.encoder, decoder)
    message = one_line(error)
    assert 'ours.params' in message and 'trained with the vgg19 encoder, not vgg_normalised' \
        in message
    encoder = adain.load_encoder('random', seed=0)
    assert encoder.kind == 'vgg19'
    with pytest.raises(StyleTransferError, match='with the vgg_normalised encoder, not vgg19'):
        adain.AdaIN(encoder, adain.load_decoder(files[1]))
    # statistics measured by one encoder are not used with another
    other = adain.AdaIN(encoder, decoder)
    with pytest.raises(StyleTransferError, match='measured with the vgg_normalised encoder'):
        other.stylise(mx.nd.zeros((1, 3, 16, 16)),
                      adain.StyleStatistics(mx.nd.zeros(512), mx.nd.ones(512),
                                            'vgg_normalised'))


def test_our_vgg19_encoder_normalises_inside(pictures):
    # index 0 of ours is ImageNet's (x - mean) / std as a 1x1 convolution
    encoder = adain.load_encoder('random', seed=0)
    x = nd(pictures['content'])
    normalised = encoder.convs[0](x).asnumpy()[0]
    mean = np.array([0.485, 0.456, 0.406])[:, None, None]
    std = np.array([0.229, 0.224, 0.225])[:, None, None]
    np.testing.assert_allclose(normalised, (pictures['content'] - mean) / std, rtol=1e-5,
                               atol=1e-5)
    assert encoder(x)[-1].shape == (1, 512, 5, 6)      # floor pooling: 42x54 -> 5x6


def test_our_vgg19_encoder_is_the_projects_vgg19(pictures):
    # the same random weights through vgg/features.py's extractor (Gluon's vgg19 layers) at
    # relu1_1, relu2_1, relu3_1, relu4_1 = indices 1, 6, 11, 20
    from styletransfer.vgg import features, weights
    encoder = adain.load_encoder('random', seed=3)
    extractor = features.build_extractor(weights.load('random', 20, seed=3), (), (1, 6, 11, 20),
                                         mx.cpu())
    mean = np.array([0.485, 0.456, 0.406])[:, None, None]
    std = np.array([0.229, 0.224, 0.225])[:, None, None]
    expected = extractor(nd((pictures['content'] - mean) / std))
    got = encoder(nd(pictures['content']))
    for a, b in zip(got, expected):
        assert_close(a, b.asnumpy(), rtol=1e-4)


def test_decoder_params_without_a_record_are_refused(net, tmp_path):
    path = str(tmp_path / 'bare.params')
    mx.nd.save(path, {'%d.weight' % i: c.weight.data() for i, c in zip(DECODER, net.decoder.convs)})
    with pytest.raises(StyleTransferError) as error:
        adain.load_decoder(path)
    assert 'does not record which encoder' in one_line(error)


def test_truncated_pth_is_refused(files, tmp_path):
    for source in files:
        data = open(source, 'rb').read()
        path = str(tmp_path / ('cut-' + os.path.basename(source)))
        with open(path, 'wb') as f:
            f.write(data[:len(data) // 2])
        with pytest.raises(StyleTransferError) as error:
            (adain.load_encoder if 'vgg' in source else adain.load_decoder)(path)
        assert one_line(error).startswith(path + ': ')


@pytest.mark.parametrize('change, fragment', [
    ('drop', 'no parameter 14.weight (weight 128x256x3x3): not AdaIN\'s decoder.pth'),
    ('reshape', 'parameter 14.weight has shape 128x256x1x1, AdaIN\'s decoder.pth needs '
                '128x256x3x3')])
def test_foreign_or_misshapen_decoder_names_the_parameter(decoder_weights, change, fragment,
                                                          tmp_path):
    state = as_state(decoder_weights)
    if change == 'drop':
        del state['14.weight']
    else:
        state['14.weight'] = state['14.weight'][:, :, :1, :1].copy()
    path = write_pth(str(tmp_path / 'other.pth'), state_dict(state), 'zip')
    with pytest.raises(StyleTransferError) as error:
        adain.load_decoder(path)
    assert one_line(error) == '%s: %s' % (path, fragment)


def test_swapped_files_are_refused(files):
    encoder, decoder = files
    with pytest.raises(StyleTransferError) as error:
        adain.load_encoder(decoder)
    assert 'no parameter 0.weight (weight 3x3x1x1)' in one_line(error)
    with pytest.raises(StyleTransferError) as error:
        adain.load_decoder(encoder)
    assert 'no parameter 1.weight (weight 256x512x3x3)' in one_line(error)


@pytest.mark.parametrize('fmt', ['zip', 'legacy'])
def test_a_malicious_pickle_never_runs(decoder_weights, fmt, tmp_path):
    marker = tmp_path / 'ran'
    state = state_dict(as_state(decoder_weights))
    state['5.bias'] = Call('os', 'system', 'touch %s' % marker)
    path = write_pth(str(tmp_path / 'evil.pth'), state, fmt)
    for load in (adain.load_decoder, adain.load_encoder):
        with pytest.raises(StyleTransferError) as error:
            load(path)
        assert 'refusing to load os.system' in one_line(error)
    assert not marker.exists()


def test_bad_weights_alpha_and_masks_are_refused(net, pictures):
    content = nd(pictures['content'])
    style = net.encode_style(nd(pictures['style']))
    with pytest.raises(StyleTransferError, match='mixing weights must be non-negative'):
        net.stylise(content, [style, style], weights=[1, -1])
    with pytest.raises(StyleTransferError, match='2 mixing weights for 1 styles'):
        net.stylise(content, [style], weights=[1, 1])
    with pytest.raises(StyleTransferError, match='alpha must be between 0 and 1'):
        net.stylise(content, style, alpha=1.5)
    with pytest.raises(StyleTransferError, match='masks must be 1x6x7'):
        net.stylise_masked(content, [style], np.ones((1, 42, 54)))
    with pytest.raises(StyleTransferError, match='mask 0 covers less than two positions'):
        net.stylise_masked(content, [style], np.zeros((1, 6, 7)))
