"""`styletransfer video` end to end on a short clip with a sound track: frames, rate and audio
kept; stopped with Ctrl-C and continued by running the same command again; bad inputs refused
with one line before anything runs. Random VGG weights, tiny frames."""
import os
import signal
import subprocess
import sys

import numpy as np
from PIL import Image

from styletransfer.cli import video as cli
from styletransfer.video import io as vio
from styletransfer.video import synthetic as syn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = ['--weights', 'random', '--ctx', 'cpu:1', '--iterations', '3', '--no-progress']


def make_clip(folder, count=6):
    path = str(folder / 'clip.mp4')
    syn.write_clip(path, syn.panning_frames(count, (48, 32), texture='noise', seed=1), 10)
    style = str(folder / 'style.png')
    Image.fromarray(np.random.RandomState(2).randint(0, 256, (40, 40, 3)).astype(np.uint8)) \
        .save(style)
    return path, style


def test_a_clip_keeps_its_frames_rate_and_sound(tmp_path, capsys):
    clip, style = make_clip(tmp_path)
    out = str(tmp_path / 'out.mp4')
    assert cli.main([clip, '-o', out, '--style', style, *ARGS]) == 0
    info, source = vio.probe(out), vio.probe(clip)
    assert info.size == (48, 32) and info.frame_rate == source.frame_rate
    assert info.has_audio and abs(info.duration - source.duration) < 0.15
    assert len(list(vio.read_frames(out))) == 6
    assert not os.path.exists(str(tmp_path / 'out.frames'))     # removed once written
    printed = capsys.readouterr().out
    assert printed.count('frame ') >= 6 and 'NOT pretrained' in printed


def test_stopped_with_ctrl_c_then_continued_by_the_same_command(tmp_path):
    clip, style = make_clip(tmp_path, count=8)
    command = [sys.executable, '-m', 'styletransfer', 'video', clip, '-o', 'out.mp4', '--style',
               style, *ARGS]
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith('frame 1:'):
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert 'run the same command again' in err and 'Traceback' not in err
    kept = sorted(os.listdir(tmp_path / 'out.frames'))
    assert 2 <= len([n for n in kept if n.startswith('frame_')]) < 8
    assert not (tmp_path / 'out.mp4').exists()
    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count('frame ') == 8 - len([n for n in kept if n.startswith('frame_')])
    assert len(list(vio.read_frames(str(tmp_path / 'out.mp4')))) == 8


def test_bad_inputs_are_refused_with_one_line(tmp_path, capsys, monkeypatch):
    clip, style = make_clip(tmp_path)
    (tmp_path / 'notes.mp4').write_text('not a video')
    cases = [([str(tmp_path / 'notes.mp4'), '-o', 'o.mp4', '--style', style], 'notes.mp4'),
             ([clip, '-o', 'o.mp4', '--style', str(tmp_path / 'none.png')], 'none.png'),
             ([clip, '-o', 'o.avi', '--style', style], '.mp4'),
             ([clip, '-o', 'o.mp4', '--style', style, '--size', 'wide'], '--size'),
             ([clip, '-o', 'o.mp4', '--style', style, '--temporal-weight', '-1'],
              '--temporal-weight')]
    monkeypatch.chdir(tmp_path)
    for argv, word in cases:
        assert cli.main(argv + ARGS) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and word in err[0], err
    assert not (tmp_path / 'o.mp4').exists()


def test_a_trained_network_per_frame(tmp_path, capsys):
    import mxnet as mx
    from styletransfer.fast import johnson, zoo
    clip, _ = make_clip(tmp_path)
    net = johnson.TransformerNet(1)
    net.initialize_weights(seed=1)
    net(mx.nd.zeros((1, 3, 16, 16)), johnson.style_weights(1, 0))
    model = str(tmp_path / 'net.params')
    zoo.save_net(net, model, style_names=['test'], loss_network='random (test)')
    out = str(tmp_path / 'fast.mp4')
    assert cli.main([clip, '-o', out, '--method', 'fast', '--model', model, '--ctx', 'cpu:1',
                     '--no-progress']) == 0
    assert len(list(vio.read_frames(out))) == 6 and vio.probe(out).has_audio
    assert cli.main([clip, '-o', str(tmp_path / 'x.mp4'), '--method', 'fast']) == 2
    assert '--model' in capsys.readouterr().err
    assert cli.main([clip, '-o', str(tmp_path / 'x.mp4'), '--method', 'fast', '--model', model,
                     '--temporal-weight', '2']) == 2
    assert '0..1' in capsys.readouterr().err


def test_adain_per_frame_measures_the_style_once(tmp_path, monkeypatch):
    import styletransfer as st
    from test_adain import DECODER, ENCODER, as_state, random_conv
    from torch_pickles import state_dict, write_pth
    clip, style = make_clip(tmp_path)
    rng = np.random.default_rng(1)
    encoder = write_pth(str(tmp_path / 'vgg_normalised.pth'), state_dict(as_state(
        {i: random_conv(rng, *shape) for i, shape in ENCODER.items()})), 'zip')
    decoder = write_pth(str(tmp_path / 'decoder.pth'), state_dict(as_state(
        {i: random_conv(rng, out, c, 3) for i, (out, c) in DECODER.items()})), 'zip')
    encoded = []
    real = st.FastStylizer._statistics

    def counting(self, style, content, settings):
        encoded.append(len(self._styles))
        return real(self, style, content, settings)
    monkeypatch.setattr(st.FastStylizer, '_statistics', counting)
    out = str(tmp_path / 'adain.mp4')
    assert cli.main([clip, '-o', out, '--method', 'adain', '--style', style, '--decoder',
                     decoder, '--encoder', encoder, '--alpha', '0.8', '--ctx', 'cpu:1',
                     '--no-progress']) == 0
    assert len(list(vio.read_frames(out))) == 6
    assert encoded == [0, 1, 1, 1, 1, 1]       # the style's statistics from the first frame on


def test_one_film_in_chunks_on_a_local_dask_cluster(tmp_path, capsys):
    import mxnet as mx
    from styletransfer.fast import johnson, zoo
    clip, _ = make_clip(tmp_path, count=8)
    net = johnson.TransformerNet(1)
    net.initialize_weights(seed=1)
    net(mx.nd.zeros((1, 3, 16, 16)), johnson.style_weights(1, 0))
    model = str(tmp_path / 'net.params')
    zoo.save_net(net, model, style_names=['test'], loss_network='random (test)')
    out = str(tmp_path / 'chunks.mp4')
    assert cli.main([clip, '-o', out, '--method', 'fast', '--model', model, '--workers', '1',
                     '--threads', '1', '--chunk', '3', '--overlap', '1', '--ctx', 'cpu']) == 0
    printed = capsys.readouterr().out
    assert 'in 3 chunks' in printed and printed.count('frames ') >= 3
    assert len(list(vio.read_frames(out))) == 8 and vio.probe(out).has_audio
