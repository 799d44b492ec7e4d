"""Controls beyond the book, each checked by its numerical effect."""
import os

import numpy as np
import mxnet as mx
import pytest
from mxnet import nd
from PIL import Image

from styletransfer import colors, device
from styletransfer.vgg import features, weights
from styletransfer.cli import train
from styletransfer.errors import StyleTransferError
from styletransfer.inputs import Inputs, parse_style_blend
from styletransfer.settings import Settings, Stage
from styletransfer.vgg.network import Network
from styletransfer.images import Normalizer
from styletransfer.losses import compute_losses, gram, style_loss
from styletransfer.gatys.optimise import initial_image, targets

CTX = mx.cpu(1)
CONTENT, STYLE = (25,), (0, 5, 10, 19, 28)


@pytest.fixture(scope='module')
def vgg():
    return weights.load('random', 28, seed=0)


@pytest.fixture(scope='module')
def extractor(vgg):
    return features.build_extractor(vgg, CONTENT, STYLE, CTX)


def picture(seed, h=40, w=60):
    return np.random.RandomState(seed).randint(0, 256, (h, w, 3)).astype(np.uint8)


def close(a, b, rtol=1e-4):
    a, b = a.asnumpy(), b.asnumpy()
    return np.abs(a - b).max() <= rtol * np.abs(b).max()


def test_style_blend_mixes_gram_matrices_with_normalised_weights(extractor):
    norm = Normalizer(CTX)
    a, b = picture(1), picture(2)
    _, _, ga = targets(extractor, norm, picture(0), a, 48, 32)
    _, _, gb = targets(extractor, norm, picture(0), b, 48, 32)
    _, _, mixed = targets(extractor, norm, picture(0), [(a, 0.7), (b, 0.3)], 48, 32)
    for m, x, y in zip(mixed, ga, gb):
        assert m.context == CTX
        assert close(m, 0.7 * x + 0.3 * y)
    inputs = Inputs('c.jpg', style_blend='a.jpg:7,b.jpg:3')
    assert inputs.styles == (('a.jpg', 0.7), ('b.jpg', 0.3))
    assert parse_style_blend('x.png') == (('x.png', 1.0),)
    with pytest.raises(StyleTransferError, match='style_blend'):
        parse_style_blend('a.jpg:heavy')
    with pytest.raises(StyleTransferError, match='style_blend'):
        Inputs('c.jpg', style_blend=(('a', 0.0), ('b', 0.0)))


def test_style_scale_resizes_the_style_relative_to_the_stage(extractor):
    norm = Normalizer(CTX)
    style = picture(3, 80, 120)
    _, _, scaled = targets(extractor, norm, picture(0), style, 48, 32, style_scale=2.0)
    _, styles = extractor.split(extractor(norm.preprocess(style, 96, 64)))
    for g, y in zip(scaled, styles):
        assert close(g, gram(y))
    _, _, plain = targets(extractor, norm, picture(0), style, 48, 32)
    assert not close(plain[0], scaled[0], rtol=1e-2)
    with pytest.raises(StyleTransferError) as e:   # 32 px * 0.25 = 8: too small for conv5_1
        Settings(stages=(Stage(48, 32, 1, 1),), style_scale=0.25).check_network(Network())
    assert e.value.field == 'style_scale'


def test_histogram_matching_gives_the_style_the_content_colour_statistics():
    content = picture(4).astype(np.float64) * [0.5, 0.9, 0.3] + [100, 10, 60]
    content = np.clip(content, 0, 255).astype(np.uint8)
    style = picture(5, 50, 30)
    matched = colors.match_histogram(style, content).reshape(-1, 3).astype(np.float64)
    c = content.reshape(-1, 3).astype(np.float64)
    assert np.allclose(matched.mean(0), c.mean(0), atol=1.0)
    assert np.allclose(np.cov(matched, rowvar=False), np.cov(c, rowvar=False), rtol=0.05,
                       atol=5.0)


def test_luminance_mode_keeps_the_content_chroma_and_the_result_luminance():
    content = picture(6)
    grey, styles = colors.luminance_inputs(content, [(picture(7, 30, 30), 1.0)])
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1],
                                                                         grey[..., 2])
    ys, yc = styles[0][0][..., 0], colors.luminance(content)
    assert abs(ys.mean() - yc.mean()) < 1 and abs(ys.std() - yc.std()) < 1
    result = picture(8, 20, 30)    # a stage result at another size than the content
    out = colors.restore_colors(result, content)
    small = np.asarray(Image.fromarray(content).resize((30, 20), Image.Resampling.BILINEAR))
    yiq_out = out.astype(np.float64) @ colors.RGB_TO_YIQ.T
    yiq_content = small.astype(np.float64) @ colors.RGB_TO_YIQ.T
    yiq_result = result.astype(np.float64) @ colors.RGB_TO_YIQ.T
    inside = (out > 0).all(-1) & (out < 255).all(-1)   # unclipped pixels keep exact values
    assert inside.mean() > 0.3
    assert np.abs(yiq_out[..., 0] - yiq_result[..., 0])[inside].max() < 1.0
    assert np.abs(yiq_out[..., 1:] - yiq_content[..., 1:])[inside].max() < 1.5


def test_initial_image_content_noise_path_and_blend():
    norm = Normalizer(CTX)
    content_x = norm.preprocess(picture(0), 48, 32)
    def start(kind, ratio=0.0, seed=5, given=None):
        return initial_image(kind, given, ratio, seed, norm, content_x, 48, 32)
    assert start('content') is content_x
    noise, again, other = start('noise'), start('noise'), start('noise', seed=6)
    assert noise.context == CTX and noise.shape == content_x.shape
    assert close(noise, again) and not close(noise, other, rtol=0.1)
    half = start('content', ratio=0.25)
    assert close(half, 0.75 * content_x + 0.25 * noise)
    given = picture(9)
    assert close(start('picture', given=given), norm.preprocess(given, 48, 32))


def test_per_layer_style_weights(extractor):
    x = Normalizer(CTX).preprocess(picture(0), 48, 32)
    contents, styles = extractor.split(extractor(x))
    _, grams = extractor.split(extractor(Normalizer(CTX).preprocess(picture(1), 48, 32)))
    grams = [gram(y) for y in grams]
    settings = Settings(style_layer_weights='0,2,0,0,0')
    assert settings.layer_style_weights(5) == (0, 2000, 0, 0, 0)
    losses = compute_losses(x, contents, styles, contents, grams, 1,
                            settings.layer_style_weights(5), 10)
    expected = 2000 * style_loss(styles[1], grams[1]).asscalar()
    assert losses.style.asscalar() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(StyleTransferError, match='style_layer_weights'):
        Settings(style_layer_weights=(1, 2)).check_network(Network())


def test_average_pooling_replaces_max_pooling(vgg):
    avg = features.build_extractor(vgg, (5,), (0,), CTX, pooling='avg')
    pools = [type(layer).__name__ for layer in avg.body if 'Pool' in type(layer).__name__]
    assert pools == ['AvgPool2D']
    x = Normalizer(CTX).preprocess(picture(0), 48, 32)
    conv2_1 = avg(x)[0]
    # By hand: conv1_1, relu, conv1_2, relu, 2x2 average, conv2_1.
    h = x
    for i in range(4):
        h = avg.body[i](h)
    h = nd.Pooling(h, kernel=(2, 2), stride=(2, 2), pool_type='avg')
    assert close(conv2_1, avg.body[5](h))
    plain = features.build_extractor(vgg, (5,), (0,), CTX)
    assert not close(plain(x)[0], conv2_1, rtol=1e-3)


def test_all_controls_through_the_train_script(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Image.fromarray(picture(10)).save('c.png')
    Image.fromarray(picture(11, 50, 50)).save('a.png')
    Image.fromarray(picture(12, 64, 40)).save('b.png')
    Image.fromarray(picture(13)).save('init.png')
    code = train.main(['c.png', '--style-blend', 'a.png:3,b.png:1', '--weights', 'random',
                       '--ctx', 'cpu:1', '--stage', '48x32:12:5', '--stage', '64x48:6:3',
                       '--preserve-colors', 'luminance', '--style-scale', '1.5',
                       '--style-layer-weights', '1,1,2,2,1', '--pooling', 'avg',
                       '--init', 'init.png', '--noise-ratio', '0.1', '-o', 'out.png'])
    assert code == 0
    out = np.asarray(Image.open('out.png'))
    assert out.shape == (48, 64, 3)
    content = np.asarray(Image.open('c.png'))
    small = np.asarray(Image.fromarray(content).resize((64, 48), Image.Resampling.BILINEAR))
    chroma = lambda a: (a.astype(np.float64) @ colors.RGB_TO_YIQ.T)[..., 1:]  # noqa: E731
    inside = (out > 0).all(-1) & (out < 255).all(-1)
    assert np.abs(chroma(out) - chroma(small))[inside].max() < 1.5
    sheet = Image.open('out-sheet.png')
    assert sheet.width > sheet.height * 3     # content, two styles and two stages side by side


def test_masked_gram_with_a_full_mask_is_the_book_gram():
    from styletransfer.losses import masked_gram
    x = nd.array(np.random.RandomState(0).normal(size=(1, 4, 3, 5)), ctx=CTX)
    ones = nd.ones((1, 1, 3, 5), ctx=CTX)
    assert close(masked_gram(x, ones, 15.0), gram(x))
    half = nd.array(np.tile([1, 1, 0, 0, 0], (3, 1)).reshape(1, 1, 3, 5), ctx=CTX)
    left = x.asnumpy()[0][:, :, :2].reshape(4, -1)
    assert np.allclose(masked_gram(x, half, 6.0).asnumpy(), left @ left.T / (4 * 6), rtol=1e-5)


def test_regions_take_their_own_style_and_none_means_no_style(extractor):
    from styletransfer.losses import Region
    from styletransfer.gatys.optimise import region_targets
    norm = Normalizer(CTX)
    content, a, b = picture(0), picture(1), picture(2)
    left = np.zeros((40, 60))
    left[:, :30] = 1.0
    regions = [(left, [(a, 1.0)]), (1 - left, [(b, 1.0)])]
    content_x, contents, out = region_targets(extractor, norm, content, regions, 48, 32)
    assert [type(r) for r in out] == [Region, Region]
    _, _, ga = targets(extractor, norm, content, a, 48, 32)
    for g, ref in zip(out[0].grams, ga):
        assert close(g, ref)
    # conv1_1 sees the full 48x32 picture: the left mask covers 24 columns of it.
    mask0, area0 = out[0].masks[0]
    assert mask0.shape == (1, 1, 32, 48) and mask0.context == CTX
    assert area0 == pytest.approx(24 * 32, rel=0.05)
    assert out[0].masks[4][0].shape == (1, 1, 2, 3)        # conv5_1: 32/16 x 48/16
    # A region without style adds nothing: the loss equals that of the other region alone.
    _, styles = extractor.split(extractor(content_x))
    only_b = region_targets(extractor, norm, content, [(left, []), (1 - left, [(b, 1.0)])],
                            48, 32)[2]
    assert len(only_b) == 1
    full = compute_losses(content_x, contents, styles, contents, out, 1, 1e3, 10).style
    part = compute_losses(content_x, contents, styles, contents, only_b, 1, 1e3, 10).style
    just_a = compute_losses(content_x, contents, styles, contents, out[:1], 1, 1e3, 10).style
    assert full.asscalar() == pytest.approx(part.asscalar() + just_a.asscalar(), rel=1e-5)


def test_region_option_through_the_train_script(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Image.fromarray(picture(10)).save('c.png')
    Image.fromarray(picture(11)).save('s.png')
    Image.fromarray(picture(12)).save('sky.png')
    mask = np.zeros((40, 60), np.uint8)
    mask[:20] = 255
    Image.fromarray(mask).save('top.png')
    args = ['--weights', 'random', '--ctx', 'cpu:1', '--stage', '48x32:6:3', '--log-every', '5',
            '--style-weight', '1e6']
    assert train.main(['c.png', 's.png', *args, '-o', 'plain.png', '--trace', 'p.jsonl']) == 0
    assert train.main(['c.png', 's.png', *args, '-o', 'reg.png', '--trace', 'r.jsonl',
                       '--region', 'top.png:sky.png']) == 0
    import json
    style = lambda path: json.loads(open(path).read().splitlines()[1])['style']  # noqa: E731
    assert style('p.jsonl') != pytest.approx(style('r.jsonl'), rel=1e-3)
    code = train.main(['c.png', 's.png', *args, '-o', 'bad.png', '--region', 'top.png'])
    assert code == 2


def test_bfloat16_where_the_cpu_runs_it_and_a_clean_refusal_where_it_does_not(
        vgg, tmp_path, monkeypatch, capsys):
    """Both kinds of CPU run this: with AVX-512, bfloat16 gives numbers close to float32's;
    without it (AVX2 only), asking for it is refused with one line before anything runs."""
    monkeypatch.chdir(tmp_path)
    Image.fromarray(picture(1)).save('c.png')
    Image.fromarray(picture(2)).save('s.png')
    args = ['c.png', 's.png', '--weights', 'random', '--stage', '48x32:4:2', '--dtype',
            'bfloat16']
    if not device.bfloat16_supported():
        assert train.main([*args, '--ctx', 'cpu:1']) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and '--dtype bfloat16 needs a CPU with AVX-512' in err[0]
        assert not os.path.exists('c-s-random-weights.png')
        return
    bf16 = features.build_extractor(vgg, CONTENT, STYLE, CTX, dtype='bfloat16')
    fp32 = features.build_extractor(vgg, CONTENT, STYLE, CTX)
    x = Normalizer(CTX).preprocess(picture(0), 48, 32)
    for a, b in zip(fp32(x), bf16(x)):
        assert b.dtype == np.float32 and b.context == CTX and a.shape == b.shape
        # bfloat16 keeps 8 bits of mantissa: features agree to about 1%, not to float noise.
        rel = np.abs((a - b).asnumpy()).mean() / np.abs(a.asnumpy()).mean()
        assert 1e-6 < rel < 0.03
    assert all(p.grad_req == 'null' for p in bf16.collect_params().values())
    # Gradients reach the image through the bfloat16 graph.
    y = x.copy()
    y.attach_grad()
    with mx.autograd.record():
        loss = nd.add_n(*[o.square().mean() for o in bf16(y)])
    loss.backward()
    assert float(nd.abs(y.grad).sum().asscalar()) > 0
    assert train.main([*args, '--ctx', 'cpu:1']) == 0
    assert os.path.exists('c-s-random-weights.png')


def test_bfloat16_refused_on_a_cpu_without_it_and_on_a_gpu(tmp_path, monkeypatch, capsys):
    """The branch the machine running the tests may not take: the CPU probe says no."""
    monkeypatch.chdir(tmp_path)
    Image.fromarray(picture(1)).save('c.png')
    Image.fromarray(picture(2)).save('s.png')
    args = ['c.png', 's.png', '--weights', 'random', '--stage', '48x32:4:2', '--dtype',
            'bfloat16']
    monkeypatch.setattr(device, 'bfloat16_supported', lambda: False)
    assert train.main([*args, '--ctx', 'cpu:1']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ['train.py: error: --dtype bfloat16 needs a CPU with AVX-512 (oneDNN has no '
                   'bfloat16 kernels for this one); use float32']
    assert sorted(os.listdir('.')) == ['c.png', 's.png']
    # No GPU here: pretend one answered, to reach the refusal that comes before any GPU work.
    monkeypatch.setattr(device, 'resolve_ctx', lambda spec: (mx.gpu(0), 'as asked'))
    assert train.main([*args, '--ctx', 'gpu:0', '-o', 'g.png']) == 2
    assert 'CPU only' in capsys.readouterr().err


def test_the_cpu_probe_reads_the_flags_and_probes_only_in_between(monkeypatch):
    calls = []
    monkeypatch.setattr(device.subprocess, 'run', lambda *a, **k: calls.append(a) or
                        type('Done', (), {'returncode': 0})())
    for flags, expected in (({'avx2', 'avx512f', 'avx512_bf16'}, True), ({'avx2', 'fma'}, False),
                            ({'avx2', 'avx512f', 'avx512bw'}, True)):
        device.bfloat16_supported.cache_clear()
        monkeypatch.setattr(device, 'cpu_flags', lambda: flags)
        assert device.bfloat16_supported() is expected
    assert len(calls) == 1      # only AVX-512 without BF16 needs the subprocess
    device.bfloat16_supported.cache_clear()
