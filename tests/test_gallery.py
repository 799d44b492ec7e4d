"""docs/gallery.py: one run per control through the public API, the network built once, and a
sheet of each beside the run without it."""
import os

import numpy as np
import pytest
from PIL import Image

import styletransfer as st
from conftest import REPO, load_script
from styletransfer.report import SHEET_CAPTION_HEIGHT, SHEET_GAP, SHEET_LABEL_HEIGHT

gallery = load_script(os.path.join(REPO, 'docs', 'gallery.py'), 'gallery')


def pixels(path):
    with Image.open(path) as img:
        return np.asarray(img.convert('RGB')).astype(float)


@pytest.fixture
def built(monkeypatch):
    """The networks the gallery builds, in order."""
    networks = []

    class Counted(st.Stylizer):
        def __init__(self, network, ctx='auto'):
            networks.append(network)
            super().__init__(network, ctx)
    monkeypatch.setattr(st, 'Stylizer', Counted)
    return networks


def test_sheets_show_each_control_beside_the_run_without_it(tmp_path, built, capsys):
    out = tmp_path / 'g'
    code = gallery.main(['--out', str(out), '--stage', '60x45:3:100', '--only', 'region',
                         '--only', 'luminance', '--only', 'avg-pooling'])
    assert code == 0
    # One network for the plain run and every control; --pooling avg needs its own, once.
    assert [n.pooling for n in built] == ['max', 'avg']
    assert all(n.weights == 'random' for n in built)
    runs = out / 'runs'
    mask = pixels(runs / gallery.TOP_MASK)[..., 0]
    rows = int(0.45 * mask.shape[0])
    assert (mask[:rows] == 255).all() and (mask[rows:] == 0).all()
    plain = pixels(runs / 'plain.png')
    assert plain.shape == (45, 60, 3)
    for name in ('region', 'luminance', 'avg-pooling'):
        # The control changed the run's result.
        assert np.abs(pixels(runs / (name + '.png')) - plain).mean() > 0.5, name
        sheet = Image.open(out / (name + '.jpg'))
        assert sheet.height == (2 * SHEET_GAP + 160 + SHEET_LABEL_HEIGHT + SHEET_CAPTION_HEIGHT)
    # The region sheet also shows the mask and the style under it: two panels wider.
    assert Image.open(out / 'region.jpg').width > Image.open(out / 'luminance.jpg').width + 200
    assert not (out / 'histogram.jpg').exists()
    said = capsys.readouterr().out.splitlines()     # in the order asked for
    assert said == ['# wrote %s' % (out / (n + '.jpg'))
                    for n in ('region', 'luminance', 'avg-pooling')]


def test_the_settings_are_the_command_lines(tmp_path):
    """What each sheet's label says is what the run got."""
    class Args:
        stage, weights = '60x45:3:100', 'random'
    settings = gallery._settings(Args, gallery.EXAMPLES['shallow-layers']['settings'])
    assert settings.stages == (st.Stage(60, 45, 3, 100, 0.01),)
    assert (settings.optimizer, settings.style_weight, settings.tv_weight) == ('lbfgs', 1e9, 1)
    assert settings.style_layer_weights == (1, 1, 0, 0, 0)
    Args.weights = 'zoo'            # pretrained: the book's weights
    settings = gallery._settings(Args, {})
    assert (settings.style_weight, settings.tv_weight) == (1e3, 10)
    blend = gallery._inputs(gallery.EXAMPLES['style-blend'], 'mask.png')
    assert blend.style is None
    assert [(os.path.basename(p), w) for p, w in blend.styles] == [('starry_night.jpg', 0.5),
                                                                   ('the_scream.jpg', 0.5)]
    region = gallery._inputs(gallery.EXAMPLES['region'], 'mask.png')
    assert [(m, os.path.basename(s)) for m, s in region.region] == [('mask.png',
                                                                     'the_scream.jpg')]
    assert gallery._inputs(gallery.EXAMPLES['init-noise'], 'mask.png').init == 'noise'


def test_unknown_example_is_refused(capsys):
    assert gallery.main(['--only', 'sepia']) == 2
    assert 'sepia' in capsys.readouterr().err


@pytest.mark.parametrize('argv, says', [
    (['--stage', 'garbage'], "--stage 'garbage': expected"),
    (['--stage', '10x10:3:100'], 'each side needs at least 16 pixels'),
    (['--weights', '/nonexistent/vgg.params'], '/nonexistent/vgg.params'),
])
def test_bad_options_are_refused_before_any_file(tmp_path, capsys, argv, says):
    out = tmp_path / 'g'
    assert gallery.main(['--out', str(out)] + argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('gallery.py: error: ') and says in err, err
    assert len(err.splitlines()) == 1
    assert not out.exists()


def test_an_out_that_is_a_file_is_refused(tmp_path, capsys):
    taken = tmp_path / 'taken.png'
    taken.write_bytes(b'a picture')
    assert gallery.main(['--out', str(taken)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith('exists and is not a folder') and len(err.splitlines()) == 1
    assert taken.read_bytes() == b'a picture'
