"""Training an AdaIN decoder (fast/train_adain.py) through the one training loop (fast/training.py)
and the command line (styletransfer train-net --method adain).

Everything runs with a seeded random encoder (our VGG-19 'random', or an authors'-layout
vgg_normalised.pth written here with random values), 32-pixel crops of pictures resized to 40,
in batches of 4: a step costs about 0.25 s of CPU. The numbers asserted are held-out losses
measured before and after training, the graph's loss terms against a NumPy computation of
the authors' loss from the encoder's features, the rates Adam was handed, parameters compared
array for array, and digests of the saved file's arrays.
"""
import hashlib
import os
import re

import numpy as np
import pytest
from PIL import Image

from styletransfer import checkpoint
from styletransfer.cli import stylize as stylize_cli
from styletransfer.cli import train_net
from styletransfer.errors import StyleTransferError
from styletransfer.fast import adain, imagefolder
from styletransfer.fast import train_adain as ta
from styletransfer.fast.training import RECIPES, Training, TrainingState, recipe_class

import conftest
from test_adain import ENCODER, as_state, random_conv
from torch_pickles import state_dict, write_pth

SIZE, LOAD, BATCH = 32, 40, 4
LR = 3e-3               # the authors' 1e-4 is for 160,000 steps; a test has a few
EPS = 1e-5


def texture(rng, height=48, width=56):
    """Content: a smooth colourful picture, three random plane waves per channel."""
    return conftest.texture(rng, height, width)


def stripes(rng, side=64):
    """Style: slanted stripes of two random colours, a random period."""
    y, x = np.mgrid[0:side, 0:side]
    period, slant = rng.uniform(2, 8), rng.uniform(-1, 1)
    colours = rng.uniform(0, 255, (2, 3))
    s = ((x + slant * y) // period % 2)[..., None]
    return (s * colours[0] + (1 - s) * colours[1]).astype(np.uint8)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """12 content and 6 style pictures to train on, 4 held-out pairs of each kind."""
    root = tmp_path_factory.mktemp('adain-data')
    rng = np.random.default_rng(0)
    for name, make, count in (('content', texture, 12), ('style', stripes, 6)):
        (root / name).mkdir()
        for k in range(count):
            Image.fromarray(make(rng)).save(root / name / ('%02d.png' % k))
    held = {'content': [texture(rng) for _ in range(4)], 'style': [stripes(rng) for _ in range(4)]}
    return {'folders': {'content': str(root / 'content'), 'style': str(root / 'style')},
            'held': held, 'root': root}


@pytest.fixture(scope='module')
def normalised_pth(tmp_path_factory):
    """An authors'-layout vgg_normalised.pth with random values (the layout test_adain checks)."""
    rng = np.random.default_rng(1)
    weights = {i: random_conv(rng, *shape) for i, shape in ENCODER.items()}
    path = str(tmp_path_factory.mktemp('encoder') / 'vgg_normalised.pth')
    return write_pth(path, state_dict(as_state(weights)), 'zip')


def settings(iterations, **kw):
    kw = dict(dict(batch_size=BATCH, image_size=SIZE, load_size=LOAD, lr=LR), **kw)
    return ta.adain_settings(iterations=iterations, **kw)


def params_of(training):
    return {name: p.data().asnumpy() for name, p in training.recipe.parameters().items()}


def file_digest(path):
    """sha256 over a saved decoder's arrays (its record left out): names sorted, each followed
    by its float32 bytes, as network_digest is defined."""
    from mxnet import nd
    saved = nd.load(path)
    saved.pop(adain.META_KEY)
    h = hashlib.sha256()
    for name in sorted(saved):
        h.update(name.encode('utf-8'))
        h.update(np.ascontiguousarray(saved[name].asnumpy(), dtype=np.float32).tobytes())
    return h.hexdigest()


def one_line(error):
    message = str(error.value)
    assert '\n' not in message
    return message


# ------------------------------------------------------------------------ the recipe

def test_adain_is_a_recipe_of_the_one_loop_with_the_authors_defaults():
    import styletransfer as st
    assert recipe_class('adain') is ta.AdaINRecipe and 'johnson' in RECIPES
    assert (st.AdaINRecipe, st.AdaINLoss, st.adain_settings) == \
        (ta.AdaINRecipe, ta.AdaINLoss, ta.adain_settings)
    s = ta.adain_settings()
    assert (s.iterations, s.batch_size, s.image_size, s.load_size, s.lr, s.lr_decay) == \
        (160000, 8, 256, 512, 1e-4, 5e-5)
    loss = ta.AdaINLoss()
    assert (loss.content_weight, loss.style_weight) == (1.0, 10.0)
    assert ta.AdaINRecipe.folders == ('content', 'style')


def test_pictures_are_resized_to_the_load_size_then_cropped(tmp_path):
    """An 80x40 picture, left half black and right half white, resized to 64 on the shorter
    side (128x64: the edge at column 64) and cropped to 32 at column `left`: the crop's share
    of white is that of its columns right of the edge."""
    picture = np.zeros((40, 80, 3), np.uint8)
    picture[:, 40:] = 255
    Image.fromarray(picture).save(tmp_path / 'half.png')
    shares = []
    for seed in range(20):
        crop = imagefolder.read_crop(str(tmp_path / 'half.png'), 32,
                                     np.random.default_rng(seed), resize=64)
        assert crop.shape == (32, 32, 3)
        left = int(np.random.default_rng(seed).integers(0, 128 - 32 + 1))   # its first draw
        share = np.clip((32 - (64 - left)) / 32, 0, 1)
        assert crop.mean() / 255 == pytest.approx(share, abs=0.04), (seed, left)
        shares.append(share)
    assert min(shares) == 0 and max(shares) == 1 and any(0 < s < 1 for s in shares)
    # the whole shorter side when no load size is given: a 40x40 square of the 80x40 picture
    whole = imagefolder.read_crop(str(tmp_path / 'half.png'), 40, np.random.default_rng(0))
    assert whole.shape == (40, 40, 3)
    centre = imagefolder.centre_crop(picture, 32, 64)       # columns 48..79: the edge at 16
    assert centre[16, 13, 0] < 5 and centre[16, 19, 0] > 250


def np_stats(f):
    """Per sample and channel: mean and the authors' std (unbiased variance + 1e-5, root)."""
    mean = f.mean(axis=(2, 3))
    count = f.shape[2] * f.shape[3]
    var = ((f - mean[..., None, None]) ** 2).sum(axis=(2, 3)) / (count - 1)
    return mean, np.sqrt(var + EPS)


def test_the_loss_graph_is_the_authors_loss(data):
    """The hybridised training graph's terms against the authors' loss computed here in
    NumPy from the encoder's features: AdaIN target at relu4_1, content MSE against it,
    style = MSE of means + MSE of stds at relu1_1..relu4_1, with the translated weights."""
    from mxnet import autograd, nd
    recipe = ta.AdaINRecipe('random', ta.AdaINLoss(content_weight=2.0, style_weight=3.0))
    training = Training(recipe, data['folders'], settings(1))
    crops = {name: np.stack([imagefolder.centre_crop(p, SIZE, LOAD) for p in pictures])
             for name, pictures in data['held'].items()}
    batch = training._to_input(crops)
    with autograd.record():
        graph = [float(v.asscalar()) for v in recipe.losses(batch, recipe.conditions(None, 4))]
    evaluation = [float(v.asscalar()) for v in recipe.evaluate(batch)]
    np.testing.assert_allclose(evaluation, graph, rtol=1e-5)

    def encode(pictures):
        x = nd.array(pictures.transpose(0, 3, 1, 2).astype(np.float32) / 255)
        return [f.asnumpy().astype(np.float64) for f in recipe.encoder(x)]
    fc, fs = encode(crops['content'])[-1], encode(crops['style'])
    c_mean, c_std = np_stats(fc)
    s_mean, s_std = np_stats(fs[-1])
    t = (fc - c_mean[..., None, None]) / c_std[..., None, None] * s_std[..., None, None] \
        + s_mean[..., None, None]
    g = recipe.decoder(nd.array(t.astype(np.float32)))
    fg = [f.asnumpy().astype(np.float64) for f in recipe.encoder(g)]
    content = ((fg[-1] - t) ** 2).mean()
    styles = []
    for a, b in zip(fg, fs):
        (ma, sa), (mb, sb) = np_stats(a), np_stats(b)
        styles.append(((ma - mb) ** 2).mean() + ((sa - sb) ** 2).mean())
    m = np.array(recipe.scales)
    assert graph[0] == pytest.approx(2.0 * content / m[-1] ** 2, rel=2e-3)
    assert graph[1] == pytest.approx(3.0 * sum(np.array(styles) / m ** 2), rel=2e-3)
    assert graph[2] == pytest.approx(graph[0] + graph[1], rel=1e-6)


def test_our_vgg19s_weights_are_translated_by_its_measured_layer_means(data):
    """The layer means are those of the bundled photographs, cropped as training crops; the
    weights are divided by their squares; 'none' leaves them as given."""
    from styletransfer.data import bundled
    from styletransfer.images import load_image
    training = Training(ta.AdaINRecipe('random'), data['folders'], settings(1))
    recipe = training.recipe
    pictures = [adain.to_input(imagefolder.centre_crop(load_image(bundled(n))[0], SIZE, LOAD))
                for n in ta.MEASURE_PICTURES]
    means = np.array([[f.asnumpy().mean() for f in recipe.encoder(p)] for p in pictures])
    np.testing.assert_allclose(recipe.scales, means.mean(axis=0), rtol=1e-5)
    m = np.array(recipe.scales)
    assert recipe.content_weight == pytest.approx(1.0 / m[-1] ** 2, rel=1e-12)
    np.testing.assert_allclose(recipe.style_weights, 10.0 / m ** 2, rtol=1e-12)
    assert 'translated by the layer means' in recipe.loss_description()
    plain = Training(ta.AdaINRecipe('random', ta.AdaINLoss(layer_scales='none')),
                     data['folders'], settings(1)).recipe
    assert plain.scales is None and plain.content_weight == 1.0
    assert plain.style_weights == [10.0] * 4


# ---------------------------------------------------------------------- training works

# 100 steps from 5e-3, annealed by the inverse-time decay to 8e-4 (the final iterate of a
# constant rate wanders: content 2.6x at 100 steps, 1.2x at 150, 2.1x at 200). Measured: content
# 2.9x and style 4.3x lower after 100 steps (3.1x and 4.4x after 150, 2.9x and 4.1x after 50).
STEPS, TRAIN_LR, TRAIN_DECAY = 100, 5e-3, 0.05
CONTENT_FACTOR, STYLE_FACTOR = 2.0, 3.0


@pytest.fixture(scope='module')
def trained(data):
    training = Training(ta.AdaINRecipe('random'), data['folders'],
                        settings(STEPS, lr=TRAIN_LR, lr_decay=TRAIN_DECAY))
    before = training.evaluate(data['held'])
    events = list(training)
    after = training.evaluate(data['held'])
    return {'training': training, 'before': before, 'after': after, 'events': events}


def test_training_lowers_content_and_style_losses_of_held_out_pairs(trained):
    before, after, events = trained['before'], trained['after'], trained['events']
    assert [e.iteration for e in events] == list(range(STEPS)) and events[-1].last
    assert set(events[0].terms) == {'content', 'style'}
    assert before['content'] / after['content'] > CONTENT_FACTOR, (before, after)
    assert before['style'] / after['style'] > STYLE_FACTOR, (before, after)
    assert after['total'] == pytest.approx(after['content'] + after['style'], rel=1e-6)


def test_the_saved_decoder_loads_and_stylises_as_trained(trained, data, tmp_path):
    """The file holds the trained decoder exactly (digest of its arrays), records its encoder,
    and FastStylizer's picture is the recipe's sample of the same pair."""
    import styletransfer as st
    from mxnet import nd
    training = trained['training']
    path = str(tmp_path / 'decoder.params')
    training.save(path, {'iterations': STEPS})
    decoder = adain.load_decoder(path)
    assert decoder.encoder_kind == 'vgg19'
    import json
    record = json.loads(nd.load(path)[adain.META_KEY].asnumpy().astype(np.uint8).tobytes())
    assert record['training']['iterations'] == STEPS
    assert record['training']['encoder'].startswith('random (seed 0)')
    assert file_digest(path) == training.digest()

    content = imagefolder.centre_crop(data['held']['content'][0], SIZE)
    style = data['held']['style'][0][:SIZE, :SIZE]
    recipe = training.recipe
    recipe.sample_style, recipe._stylizer = style, None          # the sample style: this one
    (label, sample), = recipe.sample([content])
    assert label == '1: %s' % recipe.style_name and sample.shape == (SIZE, SIZE, 3)
    fast = st.FastStylizer(ctx='cpu', decoder=path, encoder='random')
    picture = fast.stylize(st.Inputs(content, style_blend=[(style, 1.0)]),
                           st.FastSettings(style_size=0)).picture
    assert picture.shape == (SIZE, SIZE, 3) and picture.dtype == np.uint8
    assert picture.std() > 5                                     # a picture, not a flat field
    difference = np.abs(picture.astype(int) - sample.astype(int))
    assert difference.max() <= 2, difference.max()               # fused vs plain graphs


def test_a_decoder_is_refused_with_another_encoder(trained, normalised_pth, tmp_path):
    import styletransfer as st
    path = str(tmp_path / 'decoder.params')
    trained['training'].save(path)
    with pytest.raises(StyleTransferError) as error:
        st.FastStylizer(ctx='cpu', decoder=path, encoder=normalised_pth)
    assert 'trained with the vgg19 encoder, not vgg_normalised' in one_line(error)


def test_training_for_the_authors_encoder_keeps_their_weights(data, normalised_pth, tmp_path):
    """With vgg_normalised (reflection padding, ceil pooling) nothing is translated; the saved
    decoder records that encoder and loads with it, and is refused with ours."""
    import styletransfer as st
    training = Training(ta.AdaINRecipe(normalised_pth), data['folders'], settings(2))
    recipe = training.recipe
    assert recipe.scales is None
    assert (recipe.content_weight, recipe.style_weights) == (1.0, [10.0] * 4)
    events = list(training)
    assert all(np.isfinite(e.total) for e in events)
    path = str(tmp_path / 'normalised-decoder.params')
    training.save(path)
    assert adain.load_decoder(path).encoder_kind == 'vgg_normalised'
    content = data['held']['content'][0]
    picture = st.FastStylizer(ctx='cpu', decoder=path, encoder=normalised_pth).stylize(
        st.Inputs(content, style_blend=[(data['held']['style'][0], 1.0)])).picture
    assert picture.shape[2] == 3 and picture.shape[:2] == content.shape[:2]
    with pytest.raises(StyleTransferError, match='trained with the vgg_normalised encoder'):
        st.FastStylizer(ctx='cpu', decoder=path, encoder='random')


# ------------------------------------------------------------- rate schedule and resume

def record_rates(training):
    """The rates Adam's update is handed (before its bias correction), per call."""
    optimizer = training._trainer._optimizer
    seen, original = [], optimizer._get_lr

    def get_lr(index):
        rate = original(index)
        seen.append(rate)
        return rate
    optimizer._get_lr = get_lr
    return seen


def test_the_rate_decays_as_inverse_time_also_after_a_resume(data):
    decay = 0.25
    first = Training(ta.AdaINRecipe('random'), data['folders'],
                     settings(5, lr_decay=decay))
    n_params = len(first.trainable)
    assert n_params == 18                       # 9 convolutions, weight and bias
    seen = record_rates(first)
    rates = {}
    for event in first:
        rates[event.iteration] = (event.lr, list(seen))
        seen.clear()
        if event.iteration == 2:
            first.stop()
    second = Training(None, data['folders'], resume=first.state())
    seen = record_rates(second)
    for event in second:
        rates[event.iteration] = (event.lr, list(seen))
        seen.clear()
    assert sorted(rates) == [0, 1, 2, 3, 4]
    for i, (reported, used) in rates.items():
        want = LR / (1 + decay * i)
        assert reported == want
        assert used == [want] * n_params, (i, used)


def test_stop_and_resume_give_the_same_decoder_as_uninterrupted(data, tmp_path):
    s = settings(6, lr_decay=0.1)
    whole = Training(ta.AdaINRecipe('random'), data['folders'], s)
    whole_losses = [e.total for e in whole]
    first = Training(ta.AdaINRecipe('random'), data['folders'], s, loader_workers=2)
    for event in first:
        if event.iteration == 2:
            first.stop()
    assert first.stopped and first.iteration == 3
    path = tmp_path / 'state.ckpt'
    checkpoint.save(path, first.state())
    state, _ = checkpoint.load(path)
    assert isinstance(state, TrainingState) and state.recipe == 'adain'
    assert state.recipe_meta['scales'] == first.recipe.scales       # not measured again
    second = Training(None, data['folders'], resume=state)
    assert len(list(second)) == 3
    assert [p.total for p in second.history] == whole_losses
    ours, reference = params_of(second), params_of(whole)
    assert ours.keys() == reference.keys() and len(ours) == 18
    for name in reference:
        np.testing.assert_array_equal(ours[name], reference[name], err_msg=name)
    adam_a, adam_b = second._adam_state(), whole._adam_state()
    assert {n: a['count'] for n, a in adam_a.items()} == {n: 6 for n in adam_b}
    for name in adam_b:
        np.testing.assert_array_equal(adam_a[name]['var'], adam_b[name]['var'])


def test_evaluate_needs_pairs(data):
    training = Training(ta.AdaINRecipe('random'), data['folders'], settings(1))
    with pytest.raises(StyleTransferError, match='needs pictures for content, style'):
        training.evaluate(data['held']['content'])
    with pytest.raises(StyleTransferError, match='paired by position'):
        training.evaluate({'content': data['held']['content'],
                           'style': data['held']['style'][:2]})


# ------------------------------------------------------------------ the command line

CLI = ['--method', 'adain', '--weights', 'random', '--image-size', str(SIZE), '--load-size',
       str(LOAD), '--batch-size', str(BATCH), '--lr', str(LR), '--threads', '1']


def run_cli(argv, capsys):
    code = train_net.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope='module')
def cli_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp('adain-cli')
    argv = ['--content-dir', data['folders']['content'], '--style-dir',
            data['folders']['style'], '-o', out / 'decoder.params', '--iterations', '4',
            '--log-every', '2', '--sample-every', '2', '--checkpoint-every', '2',
            '--samples', '1'] + CLI
    code = train_net.main([str(a) for a in argv])
    return {'code': code, 'out': out, 'argv': argv}


def test_cli_trains_a_decoder_with_log_curve_samples_checkpoint(cli_run, data):
    out = cli_run['out']
    assert cli_run['code'] == 0
    assert sorted(os.listdir(out)) == ['decoder-losses.png', 'decoder-samples-000002.jpg',
                                      'decoder-samples-000004.jpg', 'decoder.ckpt',
                                      'decoder.log', 'decoder.params']
    assert adain.load_decoder(str(out / 'decoder.params')).encoder_kind == 'vgg19'
    log = (out / 'decoder.log').read_text().splitlines()
    # 12 content pictures hold the sample one out (8x more); 6 style pictures do not
    assert '# content %s: 11 pictures; held out for samples: 1' % data['folders']['content'] \
        in log
    assert '# style %s: 6 pictures' % data['folders']['style'] in log
    assert any(line.startswith('# encoder: random (seed 0)') for line in log)
    assert any(line.startswith('# loss: content relu4_1 x 1, style mean-std') for line in log)
    assert '# samples: in the style 00' in log
    assert any(line.endswith('Adam lr 0.003 / (1 + 5e-05 i)') for line in log), log
    steps = [line for line in log if line.startswith('iteration')]
    assert len(steps) == 2
    assert re.match(r'iteration +4, content loss [\d.e+-]+, style loss [\d.e+-]+, '
                    r'[\d.]+ sec, [\d.]+ images/s$', steps[-1])
    with Image.open(out / 'decoder-samples-000004.jpg') as sheet:  # content + decoded, 32 high
        assert sheet.size[1] == 8 + SIZE + 22 + 22 + 8
    state, extra = checkpoint.load(out / 'decoder.ckpt')
    assert state.recipe == 'adain' and state.iteration == 4
    assert state.settings.lr_decay == 5e-5 and state.settings.load_size == LOAD
    assert extra['options']['method'] == 'adain'


def test_cli_stylize_takes_the_trained_decoder_and_refuses_another_encoder(
        cli_run, data, normalised_pth, tmp_path, capsys):
    content = tmp_path / 'content.png'
    Image.fromarray(data['held']['content'][1]).save(content)
    style = os.path.join(data['folders']['style'], '01.png')
    decoder = cli_run['out'] / 'decoder.params'
    code = stylize_cli.main(['--method', 'adain', '--decoder', str(decoder), '--weights',
                             'random', '--style', style, str(content), '-o',
                             str(tmp_path / 'out.png')])
    _, err = capsys.readouterr()
    assert code == 0, err
    with Image.open(tmp_path / 'out.png') as img:
        assert img.size == (56, 48)
    code = stylize_cli.main(['--method', 'adain', '--decoder', str(decoder), '--encoder',
                             normalised_pth, '--style', style, str(content), '-o',
                             str(tmp_path / 'other.png')])
    _, err = capsys.readouterr()
    assert code == 2 and err.count('\n') == 1
    assert 'trained with the vgg19 encoder, not vgg_normalised' in err


def test_cli_resume_continues_exactly(cli_run, tmp_path, capsys):
    """2 steps, then --resume --iterations 4, equal the 4 steps of cli_run in one go."""
    argv = list(cli_run['argv'])
    argv[argv.index('-o') + 1] = tmp_path / 'decoder.params'
    argv[argv.index('--iterations') + 1] = '2'
    assert run_cli(argv, capsys)[0] == 0
    code, _, err = run_cli(['--resume', tmp_path / 'decoder.ckpt', '--iterations', '4'],
                           capsys)
    assert code == 0, err
    resumed = adain.load_decoder(str(tmp_path / 'decoder.params'))
    reference = adain.load_decoder(str(cli_run['out'] / 'decoder.params'))
    for a, b in zip(resumed.convs, reference.convs):
        np.testing.assert_array_equal(a.weight.data().asnumpy(), b.weight.data().asnumpy())
        np.testing.assert_array_equal(a.bias.data().asnumpy(), b.bias.data().asnumpy())
    code, _, err = run_cli(['--resume', tmp_path / 'decoder.ckpt', '--lr-decay', '0'], capsys)
    assert code == 2 and '--lr-decay differs' in err


@pytest.mark.parametrize('change, message', [
    (lambda a, d: [x for x in a if x not in ('--style-dir', d['style'])], '--style-dir is needed'),
    (lambda a, d: a + ['--style', os.path.join(d['style'], '00.png')],
     '--style is for --method johnson'),
    (lambda a, d: a + ['--encoder', 'vgg_normalised.pth'], 'give --encoder'),
    (lambda a, d: a + ['--tv-weight', '1'], '--tv-weight is for --method johnson'),
    (lambda a, d: a[:2] + ['--style-dir', d['empty']] + a[4:], 'no image files'),
    (lambda a, d: a + ['--image-size', '36'], 'multiple of 8'),
])
def test_cli_refusals_are_one_line(data, tmp_path, capsys, change, message):
    folders = dict(data['folders'], empty=str(tmp_path / 'empty'))
    os.mkdir(folders['empty'])
    argv = ['--content-dir', folders['content'], '--style-dir', folders['style'], '-o',
            str(tmp_path / 'd.params'), '--iterations', '1', '--samples', '0'] + CLI
    code, _, err = run_cli(change(argv, folders), capsys)
    assert code == 2, err
    assert err.count('\n') == 1 and message in err, err
    if message == 'no image files':
        assert folders['empty'] in err


def test_two_workers_train_one_decoder(data, tmp_path):
    """The launcher's scheduler, server and two workers on loopback, each reading its half of
    both folders: both end with the same decoder (digests), which moved, and worker 0's file
    holds exactly it."""
    import subprocess
    import sys
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    command = [sys.executable, '-m', 'styletransfer', 'train-net', '--workers', '2',
               '--servers', '1', '--content-dir', data['folders']['content'], '--style-dir',
               data['folders']['style'], '-o', str(tmp_path / 'decoder.params'),
               '--iterations', '3', '--samples', '0', '--log-every', '1'] + CLI[:-2]
    process = subprocess.run(command, env=dict(os.environ, PYTHONPATH=repo),
                             capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    found = re.findall(r'worker (\d)/2: (start|end) at iteration (\d+), parameters sha256 (\w+)',
                       process.stdout)
    by = {(int(w), what): (int(i), h) for w, what, i, h in found}
    assert set(by) == {(0, 'start'), (1, 'start'), (0, 'end'), (1, 'end')}, process.stdout
    assert by[0, 'start'] == by[1, 'start']                  # the same initialisation
    assert by[0, 'end'] == by[1, 'end'] and by[0, 'end'][0] == 3
    assert by[0, 'start'][1] != by[0, 'end'][1]
    assert file_digest(str(tmp_path / 'decoder.params')) == by[0, 'end'][1]
    log = (tmp_path / 'decoder.log').read_text()
    assert 'batch 4 x 2 worker(s)' in log
