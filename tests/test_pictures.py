"""Loss plot and contact sheet: atomic writes, sizes and colours as the layout rule says."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from styletransfer import report as pictures
from styletransfer.report import (SHEET_CAPTION_HEIGHT, SHEET_GAP, SHEET_LABEL_HEIGHT,
                                    contact_sheet, plot_losses)
from styletransfer.events import Progress

STAGE_SIZES = [(60, 150, 100), (40, 225, 150)]  # (iterations, width, height)
ZERO_TV_AT = (2, 10)                             # (stage, iteration) whose TV loss is 0


def synthetic_history():
    history = []
    for stage, (iterations, width, height) in enumerate(STAGE_SIZES, start=1):
        for i in range(iterations):
            decay = np.exp(-i / 15)
            content = 50.0 + 200.0 * decay
            style = 10.0 + 5000.0 * decay
            tv = 0.0 if (stage, i) == ZERO_TV_AT else 2.0 + 3.0 * decay
            history.append(Progress(stage=stage, stages=len(STAGE_SIZES), iteration=i,
                                    iterations=iterations, width=width, height=height, lr=0.1,
                                    new_lr=None,
                                    terms={'content': content, 'style': style, 'tv': tv},
                                    total=content + style + tv, seconds=0.01))
    return history


def files_in(folder):
    return sorted(os.listdir(folder))  # includes the hidden '.name.part.ext' temp files


def test_plot_losses_writes_a_non_blank_png(tmp_path):
    path = tmp_path / 'losses.png'
    plot_losses(synthetic_history(), path, title='weights: random (seed 0)')

    assert files_in(tmp_path) == ['losses.png']
    with Image.open(path) as image:
        assert image.format == 'PNG'
        width, height = pictures.PLOT_STAGE_SIZE
        assert image.size == (round(width * pictures.PLOT_DPI * len(STAGE_SIZES)),
                              round(height * pictures.PLOT_DPI))
        pixels = np.asarray(image.convert('L'), dtype=np.float64)
    assert pixels.std() > 10


def test_plot_losses_one_log_subplot_per_stage_with_clipped_zero(tmp_path):
    figure = plot_losses(synthetic_history(), tmp_path / 'losses.png', title='weights: x')

    axes = figure.axes
    assert [ax.get_title() for ax in axes] == ['stage 1: 150x100', 'stage 2: 225x150']
    assert all(ax.get_yscale() == 'log' for ax in axes)
    assert figure.get_suptitle() == 'weights: x'
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ['content', 'style', 'TV',
                                                                     'total']
    for ax, (iterations, _, _) in zip(axes, STAGE_SIZES):
        assert len(ax.lines) == 4
        for line in ax.lines:
            assert list(line.get_xdata()) == list(range(iterations))
            assert np.all(np.asarray(line.get_ydata()) > 0)
    stage, iteration = ZERO_TV_AT
    tv = np.asarray(axes[stage - 1].lines[2].get_ydata())
    # The zero sits below every real value, not at some huge negative exponent.
    assert 0 < tv[iteration] < np.delete(tv, iteration).min()
    assert tv[iteration] >= 1e-3


def test_plot_losses_rejects_empty_history_and_keeps_old_file(tmp_path):
    path = tmp_path / 'losses.png'
    path.write_bytes(b'previous')
    with pytest.raises(ValueError):
        plot_losses([], path)
    assert path.read_bytes() == b'previous'
    assert files_in(tmp_path) == ['losses.png']


def test_importing_pictures_does_not_import_matplotlib():
    code = 'import sys, styletransfer.report; print("matplotlib" in sys.modules)'
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert result.stdout.strip() == 'False'


COLOURS = [(200, 30, 30), (30, 160, 40), (40, 60, 220)]
SHAPES = [(100, 150), (300, 200), (50, 400)]  # (height, width): landscape, portrait, wide


def solid_panels():
    return [('panel %d' % i, np.full((h, w, 3), colour, dtype=np.uint8))
            for i, ((h, w), colour) in enumerate(zip(SHAPES, COLOURS))]


def expected_widths(height):
    return [max(1, round(w * height / h)) for h, w in SHAPES]


@pytest.mark.parametrize('caption', [None, 'weights: random (seed 0)'])
def test_contact_sheet_layout_and_colours(tmp_path, caption):
    height = 120
    path = tmp_path / 'sheet.png'
    sheet = contact_sheet(solid_panels(), path, height=height, caption=caption)

    widths = expected_widths(height)
    assert widths == [180, 80, 960]
    expected_width = sum(widths) + SHEET_GAP * (len(widths) + 1)
    expected_height = (SHEET_GAP + height + SHEET_LABEL_HEIGHT
                       + (SHEET_CAPTION_HEIGHT if caption else 0) + SHEET_GAP)
    assert sheet.size == (expected_width, expected_height)
    with Image.open(path) as saved:
        assert saved.format == 'PNG'
        assert saved.size == sheet.size
        pixels = np.asarray(saved.convert('RGB'))
    assert np.array_equal(pixels, np.asarray(sheet))

    left = SHEET_GAP
    for width, colour in zip(widths, COLOURS):
        assert tuple(pixels[SHEET_GAP + height // 2, left + width // 2]) == colour
        assert tuple(pixels[SHEET_GAP // 2, left + width // 2]) == (255, 255, 255)
        label_strip = pixels[SHEET_GAP + height:SHEET_GAP + height + SHEET_LABEL_HEIGHT,
                             left:left + width]
        assert (label_strip < 128).any()  # some dark text was drawn under the panel
        left += width + SHEET_GAP
    caption_strip = pixels[SHEET_GAP + height + SHEET_LABEL_HEIGHT:-SHEET_GAP]
    assert (caption_strip < 128).any() == bool(caption)
    assert files_in(tmp_path) == ['sheet.png']


def test_contact_sheet_writes_jpeg_by_extension(tmp_path):
    path = tmp_path / 'sheet.jpg'
    sheet = contact_sheet(solid_panels(), path, height=64, caption='c')
    with Image.open(path) as saved:
        assert saved.format == 'JPEG'
        assert saved.size == sheet.size


def test_contact_sheet_bad_panel_keeps_previous_file(tmp_path):
    path = tmp_path / 'sheet.png'
    path.write_bytes(b'previous')
    panels = solid_panels()[:1] + [('broken', None)]
    with pytest.raises(TypeError, match='broken'):
        contact_sheet(panels, path)
    assert path.read_bytes() == b'previous'
    assert files_in(tmp_path) == ['sheet.png']


def test_contact_sheet_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / 'sheet.png'
    path.write_bytes(b'previous')

    def half_written(self, target, *args, **kwargs):
        with open(target, 'wb') as f:
            f.write(b'\x89PNG half')
        raise OSError('disk full')

    monkeypatch.setattr(Image.Image, 'save', half_written)
    with pytest.raises(OSError, match='disk full'):
        contact_sheet(solid_panels(), path)
    assert path.read_bytes() == b'previous'
    assert files_in(tmp_path) == ['sheet.png']


def test_contact_sheet_rejects_wrong_arrays(tmp_path):
    with pytest.raises(ValueError):
        contact_sheet([('grey', np.zeros((4, 4), np.uint8))], tmp_path / 's.png')
    with pytest.raises(ValueError):
        contact_sheet([('float', np.zeros((4, 4, 3), np.float32))], tmp_path / 's.png')
    with pytest.raises(ValueError):
        contact_sheet([], tmp_path / 's.png')
    assert files_in(tmp_path) == []


def test_contact_sheet_long_label_stays_under_its_panel(tmp_path):
    height = 90
    narrow = np.full((300, 100, 3), COLOURS[1], np.uint8)
    wide = np.full((100, 300, 3), COLOURS[0], np.uint8)
    sheet = contact_sheet([('a label far wider than its thirty pixel panel', narrow),
                           ('', wide)], tmp_path / 'sheet.png', height=height)
    pixels = np.asarray(sheet)
    narrow_width = max(1, round(100 * height / 300))
    strip = pixels[SHEET_GAP + height:SHEET_GAP + height + SHEET_LABEL_HEIGHT]
    assert (strip[:, SHEET_GAP:SHEET_GAP + narrow_width] < 128).any()  # shortened, still drawn
    assert (strip[:, SHEET_GAP + narrow_width:] == 255).all()          # nothing spilled right
