"""scripts/gallery.py: one run per control, and a sheet of each beside the run without it."""
import numpy as np
from PIL import Image

from styletransfer.cli import gallery
from styletransfer.report import SHEET_CAPTION_HEIGHT, SHEET_GAP, SHEET_LABEL_HEIGHT


def pixels(path):
    with Image.open(path) as img:
        return np.asarray(img.convert('RGB')).astype(float)


def test_sheets_show_each_control_beside_the_run_without_it(tmp_path, capsys):
    out = tmp_path / 'g'
    code = gallery.main(['--out', str(out), '--stage', '60x45:3:100', '--only', 'region',
                         '--only', 'luminance'])
    assert code == 0
    runs = out / 'runs'
    mask = pixels(runs / gallery.TOP_MASK)[..., 0]
    rows = int(0.45 * mask.shape[0])
    assert (mask[:rows] == 255).all() and (mask[rows:] == 0).all()
    plain = pixels(runs / 'plain.png')
    for name in ('region', 'luminance'):
        # The control changed the run's result.
        assert np.abs(pixels(runs / (name + '.png')) - plain).mean() > 0.5
        sheet = Image.open(out / (name + '.jpg'))
        assert sheet.height == (2 * SHEET_GAP + 160 + SHEET_LABEL_HEIGHT + SHEET_CAPTION_HEIGHT)
    # The region sheet also shows the mask and the style under it: two panels wider.
    assert Image.open(out / 'region.jpg').width > Image.open(out / 'luminance.jpg').width + 200
    assert not (out / 'histogram.jpg').exists()


def test_unknown_example_is_refused(capsys):
    assert gallery.main(['--only', 'sepia']) == 2
    assert 'sepia' in capsys.readouterr().err


def test_an_out_that_is_a_file_is_refused(tmp_path, capsys):
    taken = tmp_path / 'taken.png'
    taken.write_bytes(b'a picture')
    assert gallery.main(['--out', str(taken)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith('exists and is not a folder') and len(err.splitlines()) == 1
    assert taken.read_bytes() == b'a picture'
    # a bad stage is refused before any file is made
    assert gallery.main(['--out', str(tmp_path / 'g'), '--stage', 'garbage']) == 2
    err = capsys.readouterr().err.strip()
    assert "'garbage'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / 'g').exists()
