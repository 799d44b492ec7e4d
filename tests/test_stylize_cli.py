"""FastStylizer (the feed-forward networks behind the optimisation's protocol) and the
`styletransfer stylize` command: one picture or folders, the network's own pixel convention,
style mixes, sizes, colour control, bfloat16 where the CPU runs it, --refine, and refusals
before the first pass. The networks are made by the tests (random values in the real layouts):
nothing pretrained exists here."""
import os

import mxnet as mx
import numpy as np
import pytest
from PIL import Image

import styletransfer as st
from styletransfer import colors, device, resources
from styletransfer.cli import stylize as cli
from styletransfer.fast import johnson, zoo
from test_fast_nets import np_forward, random_torch_state
from torch_pickles import state_dict, write_pth
from conftest import picture

CTX = mx.cpu(1)




@pytest.fixture(scope='module')
def torch_model(tmp_path_factory):
    """A PyTorch-examples model file (random values), and its state."""
    folder = tmp_path_factory.mktemp('models')
    state = random_torch_state(1, out_bias=120.0, out_gain=200.0)
    path = str(folder / 'candy.pth')
    write_pth(path, state_dict(state), 'zip')
    return path, state


@pytest.fixture(scope='module')
def two_styles(tmp_path_factory):
    net = johnson.TransformerNet(2)
    net.initialize_weights(seed=5)
    rng = np.random.default_rng(5)
    for norm in net.norms().values():
        norm.gamma.set_data(mx.nd.array(1 + 0.5 * rng.standard_normal((2, norm.channels))))
        norm.beta.set_data(mx.nd.array(0.5 * rng.standard_normal((2, norm.channels))))
    path = str(tmp_path_factory.mktemp('models') / 'two.params')
    zoo.save_net(net, path, style_names=['ink', 'oil'], loss_network='random (test)')
    return path


def test_a_pytorch_model_gives_its_numpy_forward_through_the_protocol(torch_model):
    path, state = torch_model
    fast = st.FastStylizer(path, ctx=CTX)
    content = picture(40, 32, 1)
    run = fast.start(st.Inputs(content))
    events = list(run)
    assert [type(e).__name__ for e in events] == ['Progress', 'StageDone']
    assert events[0].last and events[0].lr is None and events[1].picture.shape == (32, 40, 3)
    expected = np_forward(state, content.transpose(2, 0, 1)[None].astype(np.float64))[0]
    expected = np.clip(np.round(expected.transpose(1, 2, 0)), 0, 255)
    assert np.abs(run.result.picture.astype(int) - expected).max() <= 1
    assert run.result.picture is events[1].picture and not run.result.stopped
    assert run.state() is None              # one pass: nothing to resume


def test_mixes_sizes_and_colours(two_styles):
    fast = st.FastStylizer(two_styles, ctx=CTX)
    content = picture(48, 32, 2)
    ink = fast.stylize(content, st.FastSettings(style_mix='ink')).picture
    oil = fast.stylize(content, st.FastSettings(style_mix='1:1')).picture
    half = fast.stylize(content, st.FastSettings(style_mix='ink:1,oil:1')).picture
    assert np.abs(ink.astype(int) - oil).mean() > 5
    assert not np.array_equal(half, ink) and not np.array_equal(half, oil)
    small = fast.stylize(content, st.FastSettings(size='24')).picture
    assert small.shape == (16, 24, 3)
    kept = fast.stylize(content, st.FastSettings(preserve_colors='luminance')).picture
    chroma = lambda a: (a.astype(np.float64) @ colors.RGB_TO_YIQ.T)[..., 1:]  # noqa: E731
    inside = (kept > 0).all(-1) & (kept < 255).all(-1)
    assert np.abs(chroma(kept) - chroma(content))[inside].max() < 1.5
    with pytest.raises(st.StyleTransferError, match='no style'):
        fast.start(content, st.FastSettings(style_mix='watercolour'))
    with pytest.raises(st.StyleTransferError) as e:
        st.FastSettings(style_mix='ink:-1')
    assert e.value.field == 'style_mix'
    with pytest.raises(st.StyleTransferError, match='content only'):
        fast.start(st.Inputs(content, picture(20, 20, 3)))


def test_a_picture_too_large_for_memory_is_refused_with_the_size_that_fits(two_styles,
                                                                            monkeypatch):
    fast = st.FastStylizer(two_styles, ctx=CTX)
    monkeypatch.setattr(resources, 'available_bytes', lambda: 1e9)
    with pytest.raises(st.StyleTransferError) as e:
        fast.start(picture(40, 30, 1), st.FastSettings(size=(4000, 3000)))
    message = str(e.value)
    assert '4000x3000' in message and 'about' in message
    w, h = map(int, message.rsplit('about ', 1)[1].split('x'))
    assert abs(w / h - 4 / 3) < 0.02 and w * h < 4000 * 3000


def test_bfloat16_where_the_cpu_runs_it_and_refused_where_not(two_styles, monkeypatch):
    content = picture(48, 32, 2)
    plain = st.FastStylizer(two_styles, ctx='cpu').stylize(content).picture
    if device.bfloat16_supported():
        bf16 = st.FastStylizer(two_styles, ctx='cpu', dtype='bfloat16').stylize(content).picture
        difference = np.abs(bf16.astype(int) - plain).mean()
        assert 0 < difference < 8
    else:
        with pytest.raises(st.StyleTransferError, match='AVX-512'):
            st.FastStylizer(two_styles, ctx='cpu', dtype='bfloat16')
    monkeypatch.setattr(device, 'bfloat16_supported', lambda: False)
    with pytest.raises(st.StyleTransferError, match='AVX-512'):
        st.FastStylizer(two_styles, ctx='cpu', dtype='bfloat16')


def write(folder, name, array):
    path = str(folder / name)
    Image.fromarray(array).save(path)
    return path


def test_the_command_on_one_picture_and_on_a_folder(two_styles, tmp_path, capsys):
    one = write(tmp_path, 'one.png', picture(48, 32, 4))
    folder = tmp_path / 'photos'
    folder.mkdir()
    write(folder, 'a.jpg', picture(40, 40, 5))
    write(folder, 'b.png', picture(32, 48, 6))
    (folder / 'notes.txt').write_text('not a picture, and not named like one')
    assert cli.main([one, '--model', two_styles, '--ctx', 'cpu:1', '-o',
                     str(tmp_path / 'out.png')]) == 0
    expected = st.FastStylizer(two_styles, ctx=CTX).stylize(one).picture
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / 'out.png')), expected)
    assert cli.main([str(folder), '--model', two_styles, '--ctx', 'cpu:1', '--style-mix',
                     'oil', '--size', '24', '-o', str(tmp_path / 'styled')]) == 0
    assert sorted(os.listdir(tmp_path / 'styled')) == ['a.jpg', 'b.png']
    with Image.open(tmp_path / 'styled' / 'b.png') as img:
        assert img.size == (24, 36)
    out = capsys.readouterr().out
    assert 'a.jpg -> ' in out and '2 styles: ink, oil' in out


def refused(capsys, argv):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('styletransfer stylize: error: '), err
    return err[0]


def test_refusals_come_before_any_pass(two_styles, tmp_path, capsys):
    one = write(tmp_path, 'one.png', picture(48, 32, 4))
    out = tmp_path / 'out.png'
    out.write_bytes(b'precious')
    assert '--overwrite' in refused(capsys, [one, '--model', two_styles, '-o', str(out)])
    assert out.read_bytes() == b'precious'
    bad = tmp_path / 'bad.png'
    bad.write_text('no picture')
    assert 'bad.png' in refused(capsys, [one, str(bad), '--model', two_styles,
                                         '-o', str(tmp_path / 'many')])
    assert not os.listdir(tmp_path / 'many')
    assert 'no.pth' in refused(capsys, [one, '--model', str(tmp_path / 'no.pth'),
                                        '-o', str(tmp_path / 'x.png')])
    assert '--style-mix' in refused(capsys, [one, '--model', two_styles, '--style-mix',
                                             'a:b:c', '-o', str(tmp_path / 'x.png')])
    assert '--style' in refused(capsys, [one, '--model', two_styles, '--refine', '5',
                                         '-o', str(tmp_path / 'x.png')])
    assert not (tmp_path / 'x.png').exists()


def test_refine_hands_the_picture_to_the_optimiser(two_styles, tmp_path):
    one = write(tmp_path, 'one.png', picture(48, 32, 4))
    style = write(tmp_path, 'style.png', picture(40, 40, 9))
    assert cli.main([one, '--model', two_styles, '--ctx', 'cpu:1', '-o',
                     str(tmp_path / 'plain.png')]) == 0
    assert cli.main([one, '--model', two_styles, '--ctx', 'cpu:1', '--refine', '8', '--style',
                     style, '--weights', 'random', '-o', str(tmp_path / 'refined.png')]) == 0
    plain = np.asarray(Image.open(tmp_path / 'plain.png')).astype(int)
    refined = np.asarray(Image.open(tmp_path / 'refined.png')).astype(int)
    # the optimiser starts from the network's picture and moves it, but not far in 8 steps
    assert 0 < np.abs(plain - refined).mean() < 20


# -------------------------------------------------------------------------------- AdaIN

@pytest.fixture(scope='module')
def adain_files(tmp_path_factory):
    """The authors' two files in their PyTorch layout, with random values."""
    from test_adain import DECODER, ENCODER, as_state, random_conv
    folder = tmp_path_factory.mktemp('adain')
    rng = np.random.default_rng(1)
    encoder = {i: random_conv(rng, *shape) for i, shape in ENCODER.items()}
    decoder = {i: random_conv(rng, out, c, 3) for i, (out, c) in DECODER.items()}
    return (write_pth(str(folder / 'vgg_normalised.pth'), state_dict(as_state(encoder)), 'zip'),
            write_pth(str(folder / 'decoder.pth'), state_dict(as_state(decoder)), 'zip'))


def test_adain_through_the_protocol_equals_the_network_and_encodes_a_style_once(adain_files):
    from styletransfer.fast import adain
    encoder, decoder = adain_files
    fast = st.FastStylizer(ctx=CTX, decoder=decoder, encoder=encoder)
    content, style, other = picture(48, 40, 1), picture(40, 40, 2), picture(36, 44, 3)
    got = fast.stylize(st.Inputs(content, style), st.FastSettings(alpha=0.5,
                                                                  style_size=0)).picture
    net = adain.AdaIN(adain.load_encoder(encoder, CTX), adain.load_decoder(decoder, CTX), CTX)
    stats = net.encode_style(adain.to_input(style, CTX))
    expected = adain.to_picture(net.stylise(adain.to_input(content, CTX), [stats], alpha=0.5))
    np.testing.assert_array_equal(got, expected)
    # by default the style is measured with its short side at 512, as the authors' code does
    from mxnet import image as mximage, nd
    big = mximage.imresize(nd.array(style, dtype='uint8'), 512, 512).asnumpy()
    stats = net.encode_style(adain.to_input(big, CTX))
    expected = adain.to_picture(net.stylise(adain.to_input(content, CTX), [stats], alpha=0.5))
    got = fast.stylize(st.Inputs(content, style), st.FastSettings(alpha=0.5)).picture
    np.testing.assert_array_equal(got, expected)
    fast._styles.clear()
    # one style for several pictures: measured once, kept
    fast.stylize(st.Inputs(other, style))
    assert len(fast._styles) == 1
    # a blend, and regions: one white mask is the plain picture
    mixed = fast.stylize(st.Inputs(content, style_blend=[(style, 1), (other, 3)])).picture
    assert not np.array_equal(mixed, fast.stylize(st.Inputs(content, style)).picture)
    white = np.full((40, 48, 3), 255, np.uint8)
    plain = fast.stylize(st.Inputs(content, other)).picture
    masked = fast.stylize(st.Inputs(content, style, region=[(white, other)])).picture
    assert np.abs(masked.astype(int) - plain).max() <= 1
    with pytest.raises(st.StyleTransferError, match='needs a style'):
        fast.start(st.Inputs(content))
    with pytest.raises(st.StyleTransferError) as e:
        st.FastSettings(alpha=1.5)
    assert e.value.field == 'alpha'


def test_adain_in_bfloat16_where_the_cpu_runs_it_and_refused_where_not(adain_files,
                                                                        monkeypatch):
    """bfloat16 AdaIN (plain and with regions) is close to float32 but not the same picture
    (so it did run in bfloat16); an AVX2-only CPU refuses it before loading anything."""
    encoder, decoder = adain_files
    content, style, other = picture(48, 40, 1), picture(40, 40, 2), picture(36, 44, 3)
    half = np.zeros((40, 48, 3), np.uint8)
    half[:, :24] = 255
    cases = [st.Inputs(content, style), st.Inputs(content, style, region=[(half, other)]),
             st.Inputs(picture(33, 47, 5), style)]          # another size, the same graph
    plain = st.FastStylizer(ctx=CTX, decoder=decoder, encoder=encoder)
    if device.bfloat16_supported():
        bf16 = st.FastStylizer(ctx=CTX, decoder=decoder, encoder=encoder, dtype='bfloat16')
        for inputs in cases:
            want = plain.stylize(inputs).picture.astype(int)
            got = bf16.stylize(inputs).picture.astype(int)
            assert got.shape == want.shape
            assert 0 < np.abs(got - want).mean() < 0.05 * max(want.std(), 1)
    else:
        with pytest.raises(st.StyleTransferError, match='AVX-512'):
            st.FastStylizer(ctx=CTX, decoder=decoder, encoder=encoder, dtype='bfloat16')
    monkeypatch.setattr(device, 'bfloat16_supported', lambda: False)
    with pytest.raises(st.StyleTransferError, match='AVX-512'):
        st.FastStylizer(ctx=CTX, decoder=decoder, encoder=encoder, dtype='bfloat16')


def test_the_command_with_adain(adain_files, tmp_path, capsys):
    encoder, decoder = adain_files
    one = write(tmp_path, 'one.png', picture(48, 40, 4))
    a = write(tmp_path, 'a.png', picture(40, 40, 5))
    b = write(tmp_path, 'b.png', picture(40, 48, 6))
    common = [one, '--method', 'adain', '--decoder', decoder, '--encoder', encoder,
              '--ctx', 'cpu:1']
    assert cli.main(common + ['--style', a, '-o', str(tmp_path / 'a-out.png')]) == 0
    assert cli.main(common + ['--style', a, '--style', b, '--style-mix', '0:1,1:0',
                              '-o', str(tmp_path / 'mix-out.png')]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / 'a-out.png')),
                                  np.asarray(Image.open(tmp_path / 'mix-out.png')))
    assert cli.main(common + ['--style', a, '--alpha', '0', '-o', str(tmp_path / 'none.png')]) \
        == 0
    assert not np.array_equal(np.asarray(Image.open(tmp_path / 'none.png')),
                              np.asarray(Image.open(tmp_path / 'a-out.png')))
    capsys.readouterr()
    assert '--style-mix' in refused(capsys, common + ['--style', a, '--style-mix', '3:1',
                                                      '-o', str(tmp_path / 'x.png')])
    assert '--decoder' in refused(capsys, [one, '--method', 'adain', '--style', a,
                                           '-o', str(tmp_path / 'x.png')])
    assert '--alpha' in refused(capsys, common + ['--style', a, '--alpha', '2',
                                                  '-o', str(tmp_path / 'x.png')])
    assert not (tmp_path / 'x.png').exists()
