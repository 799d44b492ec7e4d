"""Output checks that need the machine to pretend: a read-only folder (tests run as root, who
may write anywhere) and a full disk; and what --ctx auto says."""
import collections
import os
import sys

import numpy as np
from PIL import Image

from styletransfer import outputs
from styletransfer.cli import train

ARGS = ['--weights', 'random', '--ctx', 'cpu:1', '--stage', '48x32:2:1']


def images(folder):
    for name, seed in (('c.png', 0), ('s.png', 1)):
        pixels = np.random.RandomState(seed).randint(0, 256, (40, 60, 3)).astype(np.uint8)
        Image.fromarray(pixels).save(folder / name)
    return [str(folder / 'c.png'), str(folder / 's.png')]


def test_output_folder_not_writable(tmp_path, monkeypatch, capsys):
    inputs = images(tmp_path)
    out = tmp_path / 'locked'
    out.mkdir()
    real = os.access
    monkeypatch.setattr(os, 'access', lambda p, mode: False if os.path.abspath(p) == str(out)
                        else real(p, mode))
    assert train.main([*inputs, *ARGS, '-o', str(out / 'x.png')]) == 2
    err = capsys.readouterr().err
    assert 'not writable' in err and str(out) in err
    assert os.listdir(out) == []


def test_full_disk_refused_before_the_run(tmp_path, monkeypatch, capsys):
    inputs = images(tmp_path)
    usage = collections.namedtuple('usage', 'total used free')
    monkeypatch.setattr(outputs.shutil, 'disk_usage', lambda p: usage(10 ** 9, 10 ** 9, 1000))
    assert train.main([*inputs, *ARGS, '-o', str(tmp_path / 'x.png')]) == 2
    err = capsys.readouterr().err
    assert 'MB free' in err and 'need about' in err
    assert sorted(os.listdir(tmp_path)) == ['c.png', 's.png']


def test_ctx_auto_says_what_it_chose(tmp_path, monkeypatch, capsys):
    inputs = images(tmp_path)
    args = [a if a != 'cpu:1' else 'auto' for a in ARGS]
    assert train.main([*inputs, *args, '-o', str(tmp_path / 'x.png')]) == 0
    out = capsys.readouterr().out
    assert '# context: cpu(0) (auto: no GPU usable, using the CPU)' in out


def test_progress_bar_on_a_terminal_never_reaches_the_log(tmp_path, monkeypatch, capsys):
    inputs = images(tmp_path)
    monkeypatch.setattr(sys.stderr, 'isatty', lambda: True, raising=False)
    log = tmp_path / 'run.log'
    args = [*inputs, '--weights', 'random', '--ctx', 'cpu:1', '--stage', '48x32:6:3',
            '--stage', '64x48:4:2', '--log-every', '3', '--log-file', str(log),
            '-o', str(tmp_path / 'x.png')]
    assert train.main(args) == 0
    captured = capsys.readouterr()
    # tqdm redraws the bar in place with carriage returns: one drawing per iteration
    bars = [b for b in captured.err.split('\r') if b.startswith('stage')]
    first = [b for b in bars if b.startswith('stage 1/2 |')]
    second = [b for b in bars if b.startswith('stage 2/2 |')]
    assert any(' 1/6 ' in b and 'left' in b and 'style' in b for b in first)
    assert any(' 6/6 ' in b for b in first) and any(' 4/4 ' in b for b in second)
    assert '\r' not in log.read_text() and '\x1b' not in log.read_text()
    assert '\r' not in captured.out and 'stage 1/2 |' not in captured.out
    assert train.main(args[:-2] + ['--no-progress', '--overwrite', '-o',
                                   str(tmp_path / 'y.png')]) == 0
    assert '\r' not in capsys.readouterr().err


def test_image_too_small_for_the_layers_names_the_minimum(tmp_path, capsys):
    inputs = images(tmp_path)
    Image.new('RGB', (40, 12), 'white').save(tmp_path / 'thin.png')
    assert train.main([inputs[0], str(tmp_path / 'thin.png'), *ARGS,
                       '-o', str(tmp_path / 'x.png')]) == 2
    err = capsys.readouterr().err
    assert 'thin.png' in err and '40x12 is too small' in err and 'at least 16' in err
    # Layers that stop before the fourth pooling need less: conv3_1 works from 4 pixels up.
    assert train.main([inputs[0], str(tmp_path / 'thin.png'), *ARGS, '--style-layers',
                       'conv1_1,conv3_1', '--content-layers', 'conv3_1',
                       '-o', str(tmp_path / 'x.png')]) == 0
