"""Training feed-forward networks (fast/training.py, fast/train_johnson.py, cli/train_net.py).

Everything runs with a seeded random VGG-19 cut at relu2_1 and 32x32 crops in batches of 4: a
step costs about 0.15 s of CPU, so a few hundred steps fit. The numbers asserted are measured
losses of held-out pictures, style statistics of the network's pictures computed here with an
independent NumPy Gram matrix, parameters compared array for array, and digests of arrays
recomputed from the saved file.
"""
import hashlib
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from styletransfer import checkpoint
from styletransfer.cli import train_net
from styletransfer.errors import StyleTransferError
from styletransfer.fast import imagefolder, johnson, zoo
from styletransfer.fast import train_johnson as tj
from styletransfer.fast.training import Training, TrainingSettings, TrainingState

import conftest
from conftest import REPO
SIZE = 32
CONTENT_LAYERS, STYLE_LAYERS = ('relu2_1',), ('relu1_1', 'relu2_1')
# The style term dominates the content term ten to a hundred times at the start: what a test
# of a few hundred steps needs to see the style learnt.
LOSS = tj.JohnsonLoss(content_weight=1.0, style_weight=1e6, style_size=0)
LR = 3e-3
CLI_LOSS = ['--weights', 'random', '--content-layers', 'relu2_1', '--style-layers',
            'relu1_1,relu2_1', '--image-size', str(SIZE), '--style-size', '0',
            '--content-weight', '1', '--style-weight', '1e6', '--lr', str(LR), '--threads', '1']


def texture(rng, height=40, width=48):
    """A smooth colourful picture: three random plane waves per channel."""
    return conftest.texture(rng, height, width)


def style_a():
    """Red diagonal stripes, 4 pixels wide."""
    y, x = np.mgrid[0:64, 0:64]
    s = ((x + y) // 4 % 2).astype(float)
    return np.stack([200 * s + 40, 30 * s, 20 + 0 * s], -1).astype(np.uint8)


def style_b():
    """Green and blue staggered blocks."""
    y, x = np.mgrid[0:64, 0:64]
    s = ((x // 3 + y // 6) % 2).astype(float)
    return np.stack([20 + 0 * s, 200 * s + 30, 150 * (1 - s) + 40], -1).astype(np.uint8)


@pytest.fixture(scope='module')
def pictures(tmp_path_factory):
    """16 training pictures in two subfolders (PNG and JPEG), 4 held-out ones, the styles."""
    root = tmp_path_factory.mktemp('pictures')
    folder = root / 'content'
    rng = np.random.default_rng(0)
    for k in range(16):
        sub = folder / ('part%d' % (k % 2))
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(texture(rng)).save(sub / ('%02d.%s' % (k, 'png' if k % 3 else 'jpg')),
                                           quality=95)
    (folder / 'notes.txt').write_text('not a picture, and not named like one')
    held = [texture(rng) for _ in range(4)]
    styles = {}
    for name, picture in (('A', style_a()), ('B', style_b())):
        styles[name] = str(root / (name + '.png'))
        Image.fromarray(picture).save(styles[name])
    return {'folder': str(folder), 'held': held, 'styles': styles, 'root': root}


def settings(iterations, **kw):
    return TrainingSettings(iterations=iterations, batch_size=4, image_size=SIZE, lr=LR, **kw)


def recipe(styles, **kw):
    network = tj.johnson_network('random', content_layers=CONTENT_LAYERS,
                                 style_layers=STYLE_LAYERS)
    return tj.JohnsonRecipe(styles, network, LOSS, **kw)


def params_of(training):
    return {name: p.data().asnumpy() for name, p in training.recipe.parameters().items()}


# ------------------------------------------------------------------------------ the folder

def test_folder_listing_order_and_crops(pictures):
    files = imagefolder.list_images(pictures['folder'])
    assert len(files) == 16 and files == sorted(files)
    assert all(f.startswith('part') for f in files)              # found below the top
    images = imagefolder.ImageFolder(pictures['folder'], rank=1, workers=2)
    assert images.shard == files[1::2]
    # one epoch of 8 positions visits each file of the shard once; restarting anywhere gives
    # the same keys
    keys = imagefolder.position_keys(0, 1, 8, 0, 12)
    assert sorted(k[0] for k in keys[:8]) == list(range(8))
    assert imagefolder.position_keys(0, 1, 8, 5, 7) == keys[5:]
    crop = imagefolder.read_crop(images.path(0), SIZE, np.random.default_rng(3))
    assert crop.shape == (SIZE, SIZE, 3) and crop.dtype == np.uint8


# ---------------------------------------------------------------------- training works

HELD_OUT_FACTOR = 5     # measured: 11.2x after 150 steps (6.1x after 50, 8.5x after 100)


def test_training_lowers_the_style_loss_of_held_out_pictures(pictures, tmp_path):
    from styletransfer.report import PLOT_DPI, PLOT_STAGE_SIZE, plot_losses
    training = Training(recipe([pictures['styles']['A']]), {'content': pictures['folder']},
                        settings(150))
    before = training.evaluate(pictures['held'], 0)
    events = list(training)
    after = training.evaluate(pictures['held'], 0)
    assert [e.iteration for e in events] == list(range(150)) and events[-1].last
    assert before['style'] / after['style'] > HELD_OUT_FACTOR, (before, after)
    curve = tmp_path / 'losses.png'
    plot_losses(training.history, curve)
    with Image.open(curve) as img:
        assert img.size == (PLOT_STAGE_SIZE[0] * PLOT_DPI, PLOT_STAGE_SIZE[1] * PLOT_DPI)


def np_gram(picture):
    """Gram matrix / (C*H*W) of the pixels themselves (ImageNet-normalised): a style
    statistic computed without MXNet."""
    x = (picture / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    flat = x.reshape(-1, 3).T
    return flat @ flat.T / flat.size


@pytest.fixture(scope='module')
def conditional(pictures):
    training = Training(recipe([pictures['styles']['A'], pictures['styles']['B']]),
                        {'content': pictures['folder']}, settings(100))
    for _ in training:
        pass
    return training


def stylise(training, picture, choice):
    from mxnet import nd
    net = zoo.LoadedNet(training.recipe.net, 'johnson', 2, ['A', 'B'], 'imagenet', '', 'test')
    pixels = nd.array(picture.astype(np.float32).transpose(2, 0, 1)[None])
    return net.stylise(pixels, choice)[0].asnumpy().transpose(1, 2, 0)


def test_conditional_network_gives_two_styles_and_a_mix_between(pictures, conditional):
    held = [imagefolder.centre_crop(p, SIZE) for p in pictures['held']]
    for content in held:
        a, b = stylise(conditional, content, 0), stylise(conditional, content, 1)
        mix = stylise(conditional, content, {0: 0.5, 1: 0.5})
        assert np.abs(a - b).mean() > 10            # two different pictures (measured 20-22)
        ga, gb, gm = (np_gram(p) for p in (a, b, mix))
        direction = (gb - ga).ravel()
        t = np.dot((gm - ga).ravel(), direction) / np.dot(direction, direction)
        off = np.linalg.norm((gm - ga).ravel() - t * direction)
        assert 0.15 < t < 0.85, t                   # between the two (measured 0.46-0.57)
        assert off < 0.2 * np.linalg.norm(direction), off       # and near the line (< 0.04)
        # every colour channel in which the two pictures differ: the mix's mean between
        means = np.array([[p[..., c].mean() for c in range(3)] for p in (a, mix, b)])
        differ = np.abs(means[0] - means[2]) > 5
        assert differ.any()
        assert np.all((means[1] - means[0])[differ] * (means[2] - means[1])[differ] > 0), means


def test_conditional_training_learns_each_style(pictures, conditional):
    """Each style's held-out loss under its own row is below that of the other style's row:
    the rows are not one style twice."""
    assert conditional.recipe.first_row == 0        # slot k is row k
    for k in (0, 1):
        own = conditional.evaluate(pictures['held'], k)['style']
        # the other style's row, measured against this style's targets
        swapped = _evaluate_with_row(conditional, pictures['held'], k, 1 - k)
        assert own < swapped, (k, own, swapped)


def test_samples_are_the_networks_pictures_as_plain_data(pictures, conditional):
    import json
    import pickle
    from styletransfer.events import Samples, from_json, to_json
    content = imagefolder.centre_crop(pictures['held'][0], SIZE)
    labels, made = zip(*conditional.recipe.sample([content]))
    assert labels == ('1: A', '1: B')
    for k, picture in enumerate(made):
        assert picture.dtype == np.uint8 and picture.shape == (SIZE, SIZE, 3)
        np.testing.assert_array_equal(picture, np.round(stylise(conditional, content, k)))
    event = Samples(7, list(labels), list(made))
    back = from_json(json.loads(json.dumps(to_json(event))))
    again = pickle.loads(pickle.dumps(event))
    for other in (back, again):
        assert (type(other), other.iteration, other.labels) == (Samples, 7, list(labels))
        for x, y in zip(other.pictures, made):
            np.testing.assert_array_equal(x, y)


def _evaluate_with_row(training, held, slot, row):
    from mxnet import nd
    recipe = training.recipe
    crops = np.stack([imagefolder.centre_crop(p, SIZE) for p in held])
    batch = training._to_input({'content': crops})
    slots = nd.array([slot] * len(crops))
    rows = nd.array([row] * len(crops))
    recipe.evaluate(batch, 0)           # builds the evaluation graph
    values = recipe._evaluation(batch['content'], rows, slots, *recipe.affine, *recipe.targets)
    return float(values[1].asscalar())


@pytest.mark.parametrize('style_loss', ['gram', 'mean-std', 'mmd-gauss'])
def test_the_loss_graph_gives_each_sample_its_own_styles_loss(pictures, style_loss):
    """The hybridised graph's terms against the same losses computed eagerly, sample by
    sample, from the extractor and the style pictures' own targets: checks the gathering of
    per-sample targets (and the Gaussian MMD's shared projection) and the weights."""
    from mxnet import nd
    from styletransfer.losses import STYLE_LOSSES, tv_loss
    from styletransfer.images import Normalizer
    loss = tj.JohnsonLoss(content_weight=2.0, style_weight=3e5, tv_weight=0.5,
                          style_loss=style_loss, style_size=0)
    network = tj.johnson_network('random', content_layers=CONTENT_LAYERS,
                                 style_layers=STYLE_LAYERS)
    styles = [style_a(), style_b()]
    r = tj.JohnsonRecipe(styles, network, loss)
    training = Training(r, {'content': pictures['folder']}, settings(1))
    crops = np.stack([imagefolder.centre_crop(p, SIZE) for p in pictures['held']])
    x = training._to_input({'content': crops})['content']
    slots = [0, 1, 1, 0]
    from mxnet import autograd
    with autograd.train_mode():          # the training graph's norms are BatchNorm's kernel
        values = r.losses({'content': x}, slots)
    content, style, tv, total = (float(v.asscalar()) for v in values)

    fn = STYLE_LOSSES[style_loss]
    normalizer = Normalizer(training.ctx)
    targets = [r.extractor.split(r.extractor(normalizer.preprocess(s, 64, 64)))[1]
               for s in styles]
    y = r.net(x, nd.array(np.eye(2)[slots]))
    fy_content, fy_style = r.extractor.split(r.extractor(y))
    fx_content, _ = r.extractor.split(r.extractor(x))
    want_style = 0.0
    for k, slot in enumerate(slots):
        for f, t in zip(fy_style, targets[slot]):
            want_style += float(fn.loss(f[k:k + 1], fn.target(t)).asscalar()) / len(slots)
    want_content = sum(float(((a - b) ** 2).mean().asscalar())
                       for a, b in zip(fy_content, fx_content))
    assert style == pytest.approx(3e5 * want_style, rel=1e-4)
    assert content == pytest.approx(2.0 * want_content, rel=1e-4)
    assert tv == pytest.approx(0.5 * float(tv_loss(y).asscalar()), rel=1e-4)
    assert total == pytest.approx(content + style + tv, rel=1e-5)


# -------------------------------------------------------------------------- resuming

def test_stop_and_resume_give_the_same_parameters_as_uninterrupted(pictures, tmp_path):
    styles = [pictures['styles']['A'], pictures['styles']['B']]
    folders = {'content': pictures['folder']}
    whole = Training(recipe(styles), folders, settings(6))
    whole_losses = [e.total for e in whole]

    first = Training(recipe(styles), folders, settings(6), loader_workers=2)
    for event in first:
        if event.iteration == 2:
            first.stop()
    assert first.stopped and first.iteration == 3
    import pickle
    taken = first.state()
    copy = pickle.loads(pickle.dumps(taken))            # plain numbers and numpy arrays
    assert copy.iteration == 3 and copy.params.keys() == taken.params.keys()
    path = tmp_path / 'state.ckpt'
    checkpoint.save(path, taken)
    state, _ = checkpoint.load(path)                    # a zip of JSON and an npz, no pickle
    assert isinstance(state, TrainingState) and state.iteration == 3
    second = Training(None, folders, resume=state)
    rest = [e.total for e in second]
    assert len(rest) == 3
    assert [p.total for p in second.history] == whole_losses
    ours, reference = params_of(second), params_of(whole)
    assert ours.keys() == reference.keys()
    for name in reference:
        np.testing.assert_array_equal(ours[name], reference[name], err_msg=name)
    adam_a, adam_b = second._adam_state(), whole._adam_state()
    assert {n: s['count'] for n, s in adam_a.items()} == {n: 6 for n in adam_b}
    for name in adam_b:
        np.testing.assert_array_equal(adam_a[name]['var'], adam_b[name]['var'])


def test_resume_refuses_other_settings_or_files(pictures, tmp_path):
    training = Training(recipe([pictures['styles']['A']]), {'content': pictures['folder']},
                        settings(2))
    list(training)
    state = training.state()
    with pytest.raises(StyleTransferError, match='lr'):
        Training(None, {'content': pictures['folder']}, TrainingSettings(
            iterations=4, batch_size=4, image_size=SIZE, lr=0.1), resume=state)
    other = tmp_path / 'other'
    other.mkdir()
    Image.fromarray(texture(np.random.default_rng(9))).save(other / 'x.png')
    with pytest.raises(StyleTransferError, match='not those the state was trained on'):
        Training(None, {'content': str(other)}, resume=state)


# ------------------------------------------------------------------ the command line

def run_cli(argv, capsys):
    code = train_net.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize('make, message', [
    (lambda d: None, 'no such folder'),
    (lambda d: d.mkdir(), 'no image files'),
    (lambda d: (d.mkdir(), (d / 'a.txt').write_text('x')), 'no image files'),
    (lambda d: d.write_text('a file'), 'not a folder'),
])
def test_missing_or_empty_folder_is_one_line(tmp_path, capsys, pictures, make, message):
    folder = tmp_path / 'content'
    make(folder)
    code, _, err = run_cli(['--style', pictures['styles']['A'], '--content-dir', folder,
                            '-o', tmp_path / 'net.params'] + CLI_LOSS, capsys)
    assert code == 2
    assert err.count('\n') == 1 and message in err and str(folder) in err


def test_folder_of_broken_files_is_one_line(tmp_path, capsys, pictures):
    folder = tmp_path / 'content'
    folder.mkdir()
    (folder / 'a.jpg').write_bytes(b'not a jpeg')
    (folder / 'b.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'\0' * 20)
    code, _, err = run_cli(['--style', pictures['styles']['A'], '--content-dir', folder,
                            '-o', tmp_path / 'net.params', '--iterations', '2',
                            '--samples', '0'] + CLI_LOSS, capsys)
    assert code == 2
    assert err.count('\n') == 1 and 'none of the 2 image files could be read' in err


@pytest.fixture(scope='module')
def cli_run(pictures, tmp_path_factory):
    """The command line on 6 good and 2 broken pictures, 4 steps: every file is read."""
    root = tmp_path_factory.mktemp('cli')
    folder = root / 'content'
    folder.mkdir()
    rng = np.random.default_rng(5)
    for k in range(6):
        Image.fromarray(texture(rng)).save(folder / ('a%d.png' % k))
    (folder / 'broken.jpg').write_bytes(b'this is text')
    with open(folder / 'a0.png', 'rb') as f:
        (folder / 'truncated.png').write_bytes(f.read()[:200])
    out = root / 'out'
    out.mkdir()
    argv = ['--style', pictures['styles']['A'], '--content-dir', folder, '-o', out / 'net.params',
            '--iterations', '4', '--log-every', '2', '--sample-every', '2',
            '--checkpoint-every', '2', '--samples', '1'] + CLI_LOSS
    code = train_net.main([str(a) for a in argv])
    return {'code': code, 'out': out, 'argv': argv, 'folder': folder}


def test_cli_writes_network_log_curve_samples_checkpoint(cli_run, capsys):
    out = cli_run['out']
    assert cli_run['code'] == 0
    assert sorted(os.listdir(out)) == ['net-losses.png', 'net-samples-000002.jpg',
                                      'net-samples-000004.jpg', 'net.ckpt', 'net.log',
                                      'net.params']
    net = zoo.get_net(str(out / 'net.params'))
    assert (net.kind, net.n_styles, net.style_names, net.convention) == \
        ('johnson', 1, ['A'], 'imagenet')
    assert 'random (seed 0)' in net.loss_network and 'relu2_1' in net.loss_network
    assert net.extra == {'iterations': 4, 'image_size': SIZE}
    log = (out / 'net.log').read_text().splitlines()
    steps = [line for line in log if line.startswith('iteration')]
    assert [int(line.split()[1].rstrip(',')) for line in steps] == [2, 4]
    assert re.match(r'iteration +4, content loss [\d.e+-]+, style loss [\d.e+-]+, TV loss 0, '
                    r'[\d.]+ sec, [\d.]+ images/s, 2 broken files skipped$', steps[-1])
    skipped = sorted(line.split()[4].rstrip(':') for line in log if 'skipped broken' in line)
    assert skipped == ['broken.jpg', 'truncated.png']
    assert '# content %s: 7 pictures; held out for samples: 1' % cli_run['folder'] in log
    with Image.open(out / 'net-samples-000004.jpg') as sheet:   # content + 1 style, 32 high
        assert sheet.size[1] == 8 + SIZE + 22 + 22 + 8
    state, extra = checkpoint.load(out / 'net.ckpt')
    assert state.iteration == 4 and extra['options']['samples'] == 1
    assert sorted(p for p, _ in state.broken) == ['broken.jpg', 'truncated.png']


def test_cli_never_overwrites_without_being_asked(cli_run, capsys):
    before = (cli_run['out'] / 'net.params').read_bytes()
    code, _, err = run_cli(cli_run['argv'], capsys)
    assert code == 2 and 'exists; pass --overwrite' in err
    assert (cli_run['out'] / 'net.params').read_bytes() == before


def test_cli_resume_continues_a_finished_training_exactly(cli_run, tmp_path, capsys):
    """2 steps, then --resume --iterations 4, equal the 4 steps of cli_run in one go."""
    argv = list(cli_run['argv'])
    argv[argv.index('-o') + 1] = tmp_path / 'net.params'
    argv[argv.index('--iterations') + 1] = '2'
    assert run_cli(argv, capsys)[0] == 0
    code, _, err = run_cli(['--resume', tmp_path / 'net.ckpt', '--iterations', '4'], capsys)
    assert code == 0, err
    log = (tmp_path / 'net.log').read_text()
    assert '# resumed from %s at iteration 2' % (tmp_path / 'net.ckpt') in log
    assert log.count('iteration      4, ') == 1
    resumed = zoo.get_net(str(tmp_path / 'net.params')).block.canonical_state()
    reference = zoo.get_net(str(cli_run['out'] / 'net.params')).block.canonical_state()
    for name in reference:
        np.testing.assert_array_equal(resumed[name].asnumpy(), reference[name].asnumpy())
    code, _, err = run_cli(['--resume', tmp_path / 'net.ckpt', '--lr', '0.5'], capsys)
    assert code == 2 and 'lr differs' in err


def test_sigterm_stops_with_a_checkpoint_that_resumes_exactly(pictures, tmp_path, capsys):
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    argv = ['--style', pictures['styles']['A'], '--content-dir', pictures['folder'],
            '--log-every', '1', '--samples', '0', '--checkpoint-every', '0'] + CLI_LOSS
    stopped = tmp_path / 'stopped'
    stopped.mkdir()
    process = subprocess.Popen(
        [sys.executable, '-m', 'styletransfer', 'train-net', '-o', str(stopped / 'net.params'),
         '--iterations', '1000'] + [str(a) for a in argv], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith('iteration'):
            process.send_signal(signal.SIGTERM)
            break
    out, err = process.communicate(timeout=300)
    assert process.returncode == 130, err
    assert 'continue with: styletransfer train-net --resume' in err
    assert not (stopped / 'net.params').exists()
    state, _ = checkpoint.load(stopped / 'net.ckpt')
    target = state.iteration + 2
    assert 1 <= state.iteration < 1000
    code, _, err = run_cli(['--resume', stopped / 'net.ckpt', '--iterations', target], capsys)
    assert code == 0, err
    whole = tmp_path / 'whole'
    whole.mkdir()
    assert run_cli(argv + ['-o', whole / 'net.params', '--iterations', target], capsys)[0] == 0
    a = zoo.get_net(str(stopped / 'net.params')).block.canonical_state()
    b = zoo.get_net(str(whole / 'net.params')).block.canonical_state()
    for name in b:
        np.testing.assert_array_equal(a[name].asnumpy(), b[name].asnumpy())


def test_add_styles_trains_only_the_new_rows(pictures, tmp_path, capsys):
    base = johnson.TransformerNet(1)
    base.initialize_weights(seed=3)
    zoo.save_net(base, str(tmp_path / 'base.params'), ['first'])
    code, _, err = run_cli(['--add-styles-to', tmp_path / 'base.params',
                            '--style', pictures['styles']['B'], '--content-dir',
                            pictures['folder'], '-o', tmp_path / 'grown.params',
                            '--iterations', '3', '--samples', '1', '--sample-every', '3']
                           + CLI_LOSS, capsys)
    assert code == 0, err
    grown = zoo.get_net(str(tmp_path / 'grown.params'))
    assert (grown.n_styles, grown.style_names) == (2, ['first', 'B'])
    old = {k: v.asnumpy() for k, v in base.canonical_state().items()}
    new = {k: v.asnumpy() for k, v in grown.block.canonical_state().items()}
    assert old.keys() == new.keys()
    tables = 0
    for name, value in old.items():
        if value.ndim == 2:                      # a norm's (n_styles, C) table
            tables += 1
            np.testing.assert_array_equal(new[name][:1], value, err_msg=name)
            # the new row started as the mean of the old ones (here: row 0) and moved; but a
            # residual block's last shift only adds a constant per channel that the next
            # instance norm removes: it has no gradient to move by
            if not re.match(r'res\d\.in2\.beta', name):
                assert np.abs(new[name][1] - value[0]).max() > 1e-4, name
        else:
            np.testing.assert_array_equal(new[name], value, err_msg=name)
    assert tables == 2 * 15


# ----------------------------------------------------------------------- distributed

def launch(pictures, tmp_path, iterations, **kw):
    command = [sys.executable, '-m', 'styletransfer', 'train-net', '--workers', '2',
               '--servers', '1', '--style', pictures['styles']['A'], '--content-dir',
               pictures['folder'], '-o', str(tmp_path / 'net.params'), '--iterations',
               str(iterations), '--samples', '0', '--log-every', '1'] + CLI_LOSS
    return subprocess.Popen(command, env=dict(os.environ, PYTHONPATH=REPO),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def worker_digests(stdout):
    found = re.findall(r'worker (\d)/2: (start|end) at iteration (\d+), parameters sha256 (\w+)',
                       stdout)
    return {(int(w), what): (int(i), h) for w, what, i, h in found}



def digest(arrays):
    h = hashlib.sha256()
    for name in sorted(arrays):
        h.update(name.encode('utf-8'))
        h.update(np.ascontiguousarray(arrays[name], dtype=np.float32).tobytes())
    return h.hexdigest()


def test_two_workers_on_the_distributed_store_end_identical(pictures, tmp_path):
    """Scheduler, one server, two workers on loopback through the launcher: both workers end
    with the same parameters (digests of every array), which moved from the start, and worker
    0's saved network holds exactly them."""
    from mxnet import nd
    process = launch(pictures, tmp_path, 3)
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    by = worker_digests(stdout)
    assert set(by) == {(0, 'start'), (1, 'start'), (0, 'end'), (1, 'end')}, stdout
    assert by[0, 'end'] == by[1, 'end'] and by[0, 'end'][0] == 3, stdout
    assert by[0, 'start'][1] != by[0, 'end'][1]
    saved = nd.load(str(tmp_path / 'net.params'))
    saved.pop(zoo.META_KEY)
    assert digest({k: v.asnumpy() for k, v in saved.items()}) == by[0, 'end'][1]
    # only worker 0 logs: one line per iteration
    steps = [line for line in stdout.splitlines() if line.startswith('iteration')]
    assert len(steps) == 3


def test_sigterm_to_the_launcher_stops_both_workers_after_the_same_iteration(pictures,
                                                                              tmp_path):
    process = launch(pictures, tmp_path, 1000)
    for line in process.stdout:
        if line.startswith('iteration'):
            process.send_signal(signal.SIGTERM)
            break
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 130, stderr[-3000:]
    by = worker_digests(stdout)
    assert by[0, 'end'] == by[1, 'end'], stdout          # same iteration, same parameters
    state, _ = checkpoint.load(tmp_path / 'net.ckpt')
    assert state.iteration == by[0, 'end'][0] < 1000
    assert state.workers == 2 and not (tmp_path / 'net.params').exists()
    assert 'continue with: styletransfer train-net --resume' in stderr


def test_pixel_mapping_of_a_network_in_another_convention():
    """VGG's input x = (p/255 - mean)/std; an 'rgb255' network takes and gives p itself."""
    in_scale, in_shift, out_scale, out_shift = (a.reshape(3) for a in tj._affine('rgb255'))
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    p = np.array([0.0, 128.0, 255.0])
    x = (p / 255 - mean) / std
    np.testing.assert_allclose(in_scale * x + in_shift, p, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(out_scale * p + out_shift, x, rtol=1e-5, atol=1e-6)
    assert [a.ravel().tolist() for a in tj._affine('imagenet')] == [[1.0] * 3, [0.0] * 3,
                                                                    [1.0] * 3, [0.0] * 3]


def test_styles_added_to_an_rgb255_network_keep_its_rows_and_convention(pictures):
    from mxnet import autograd, nd
    block = johnson.TransformerNet(1, 'rgb255')
    block.initialize_weights(seed=4)
    old = {k: v.asnumpy() for k, v in block.canonical_state().items()}
    base = zoo.LoadedNet(block, 'johnson', 1, ['candy'], 'rgb255', '', 'candy.pth')
    training = Training(recipe([pictures['styles']['B']], base=base),
                        {'content': pictures['folder']}, settings(2))
    events = list(training)
    assert all(np.isfinite(e.total) for e in events)
    assert training.recipe.all_style_names() == ['candy', 'B']
    new = {k: v.asnumpy() for k, v in training.recipe.network_state().items()}
    for name, value in old.items():
        np.testing.assert_array_equal(new[name][:1] if value.ndim == 2 else new[name], value)
    assert training.recipe.net.convention == 'rgb255'
    # the graph maps VGG's input to 0..255 and back: its content term is the eager one's
    crops = np.stack([imagefolder.centre_crop(p, SIZE) for p in pictures['held']])
    x = training._to_input({'content': crops})['content']
    r = training.recipe
    with autograd.train_mode():
        content = float(r.losses({'content': x}, [0] * 4)[0].asscalar())
    from styletransfer.fast import conventions
    pixels = nd.array(crops.transpose(0, 3, 1, 2).astype(np.float32))
    y = r.net(pixels, nd.array([[0.0, 1.0]] * 4))            # 0..255 in, 0..255 out
    fy, _ = r.extractor.split(r.extractor(conventions.to_input(y, 'imagenet')))
    fx, _ = r.extractor.split(r.extractor(x))
    want = float(((fy[0] - fx[0]) ** 2).mean().asscalar()) * LOSS.content_weight
    assert content == pytest.approx(want, rel=1e-3)
