"""Nothing lost: stop with a real signal, resume, and end with the uninterrupted run's image;
periodic and between-stage checkpoints; divergence keeps the last finite image; atomic writes."""
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from styletransfer import checkpoint, files
from styletransfer.cli import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(REPO, 'scripts', 'train.py')
SCHEDULE = ['--weights', 'random', '--ctx', 'cpu:1', '--style-weight', '1e6', '--log-every', '10',
            '--stage', '48x32:60:20', '--stage', '64x48:30:10']


@pytest.fixture
def inputs(tmp_path):
    rng = np.random.RandomState(3)
    y, x = np.mgrid[0:40, 0:60]
    content = np.stack([x * 4, y * 6, (x * y) % 256], -1).astype(np.uint8)
    style = rng.randint(0, 256, (50, 50, 3)).astype(np.uint8)
    Image.fromarray(content).save(tmp_path / 'content.png')
    Image.fromarray(style).save(tmp_path / 'style.png')
    return [str(tmp_path / 'content.png'), str(tmp_path / 'style.png')]


def pixels(path):
    return np.asarray(Image.open(path)).astype(int)


def book_lines(path):
    """Log lines without comments and without the (machine-dependent) seconds."""
    with open(path) as f:
        return [line.rsplit(',', 1)[0] if line.startswith('epoch') else line.rstrip('\n')
                for line in f if not line.startswith('#')]


def run_cli(args, cwd):
    return subprocess.run([sys.executable, TRAIN, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_stop_with_signal_then_resume_matches_uninterrupted(tmp_path, inputs, sig):
    full = run_cli([*inputs, *SCHEDULE, '-o', 'full.png', '--log-file', 'full.log'], tmp_path)
    assert full.returncode == 0, full.stderr

    proc = subprocess.Popen([sys.executable, TRAIN, *inputs, *SCHEDULE, '-o', 'part.png',
                             '--log-file', 'part.log'], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:          # stop in the middle of stage 1
        if line.startswith('epoch  20'):
            proc.send_signal(sig)
            break
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert '--resume part.ckpt' in err and 'Traceback' not in err
    assert 'best image so far: part-interrupted.png' in out
    assert (tmp_path / 'part.ckpt').exists()
    assert pixels(tmp_path / 'part-interrupted.png').shape == (32, 48, 3)
    assert not (tmp_path / 'part.png').exists()
    saved, extra = checkpoint.load(str(tmp_path / 'part.ckpt'))
    assert saved.stage == 1 and 20 < saved.next_iteration < 60
    assert extra['log_every'] == 10 and extra['output'] == str(tmp_path / 'part.png')

    resumed = run_cli(['--resume', 'part.ckpt', '--ctx', 'cpu:1'], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert np.abs(pixels(tmp_path / 'part.png') - pixels(tmp_path / 'full.png')).max() <= 1
    assert book_lines(tmp_path / 'part.log') == book_lines(tmp_path / 'full.log')
    assert not (tmp_path / 'part.ckpt').exists()   # complete: nothing left to resume


def test_periodic_and_between_stage_checkpoints(tmp_path, inputs, monkeypatch):
    saves, copies = [], tmp_path / 'copies'
    copies.mkdir()
    real_save = checkpoint.save

    def recording_save(path, state, extra=None):
        real_save(path, state, extra)
        saves.append((state.stage, state.next_iteration))
        shutil.copy(path, copies / ('%d-%d.ckpt' % (state.stage, state.next_iteration)))
    monkeypatch.setattr(checkpoint, 'save', recording_save)
    monkeypatch.chdir(tmp_path)
    assert train.main([*inputs, *SCHEDULE, '-o', 'full.png', '--checkpoint-every', '25']) == 0
    assert saves == [(1, 25), (1, 50), (2, 0), (2, 25)]
    assert not (tmp_path / 'full.ckpt').exists()

    # Resuming from the checkpoint taken between the stages ends with the same image.
    shutil.copy(copies / '2-0.ckpt', tmp_path / 'again.ckpt')
    os.remove(tmp_path / 'full.png')
    assert train.main(['--resume', 'again.ckpt', '--ctx', 'cpu:1', '-o', 'again.png']) == 0
    assert np.abs(pixels(tmp_path / 'again.png') - pixels(tmp_path / 'full-stage2.png')).max() <= 1


def test_resume_refuses_options_that_change_the_run(tmp_path, inputs, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'x.ckpt').write_bytes(b'whatever')
    assert train.main(['--resume', 'x.ckpt', '--ctx', 'cpu:1']) == 2
    err = capsys.readouterr().err
    assert 'x.ckpt' in err and 'not a checkpoint' in err and 'Traceback' not in err
    assert len(err.strip().splitlines()) == 1


def test_resume_accepts_the_runs_own_options_and_names_one_that_differs(tmp_path, midway,
                                                                        monkeypatch, capsys):
    run, mid = midway
    monkeypatch.chdir(run)
    same = ['content.png', 'style.png', '--weights', 'random', '--stage', '48x32:20:10']
    for changed, option in ((['--stage', '48x32:20:5'], '--stage'), (['--tv-weight', '3'],
                            '--tv-weight'), (['--seed', '4'], '--seed'),
                            (['--log-every', '7'], '--log-every')):
        assert train.main(same + changed + ['--resume', str(mid), '--ctx', 'cpu:1']) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and option + ' differs' in err[0], err
    assert train.main(['style.png', 'content.png', '--resume', str(mid)]) == 2
    assert 'drop CONTENT and STYLE' in capsys.readouterr().err
    # The same command line as the run's own, with --resume added: accepted.
    assert train.main(same + ['-o', 'out.png', '--resume', str(mid), '--ctx', 'cpu:1']) == 0
    assert pixels(run / 'out.png').shape == (32, 48, 3)


def test_checkpoints_of_another_kind_or_version_are_refused(tmp_path, capsys, monkeypatch):
    import json
    import zipfile
    monkeypatch.chdir(tmp_path)
    for name, meta in (('old.ckpt', {'format': 'styletransfer-checkpoint-1'}),
                       ('other.ckpt', {'format': checkpoint.FORMAT, 'kind': 'nonsense'})):
        with zipfile.ZipFile(name, 'w') as z:
            z.writestr('meta.json', json.dumps(meta))
            z.writestr('arrays.npz', b'')
        assert train.main(['--resume', name]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and name in err[0], err
    with open('cut.ckpt', 'wb') as f:
        f.write(open(os.path.join(REPO, 'README.md'), 'rb').read()[:100])
    assert train.main(['--resume', 'cut.ckpt']) == 2
    assert 'not a checkpoint' in capsys.readouterr().err


def test_divergence_keeps_last_finite_image(tmp_path, inputs, capsys, monkeypatch):
    from styletransfer.gatys import optimise
    real = optimise._losses_and_gradient
    calls = []

    def poisoned(*args, **kwargs):
        losses = real(*args, **kwargs)
        calls.append(1)
        if len(calls) >= 8:
            return losses[:-1] + [float('nan')]
        return losses
    monkeypatch.setattr(optimise, '_losses_and_gradient', poisoned)
    monkeypatch.chdir(tmp_path)
    assert train.main([*inputs, *SCHEDULE, '-o', 'out.png']) == 1
    err = capsys.readouterr().err
    assert 'nan' in err and 'iteration 7' in err
    kept = pixels(tmp_path / 'out-diverged.png')
    assert kept.shape == (32, 48, 3) and kept.std() > 1
    assert not (tmp_path / 'out.png').exists()


def test_atomic_write_interrupted_half_way_keeps_old_file(tmp_path):
    target = tmp_path / 'log.txt'
    target.write_text('old and whole\n')
    with pytest.raises(KeyboardInterrupt):
        with files.atomic_path(str(target)) as tmp:
            with open(tmp, 'w') as f:
                f.write('half of the new')
            raise KeyboardInterrupt
    assert target.read_text() == 'old and whole\n'
    assert os.listdir(tmp_path) == ['log.txt']
    files.write_text(str(target), 'new\n')
    assert target.read_text() == 'new\n'
    # A new file gets the mode a plain open() would give, not mkstemp's private 0600.
    umask = os.umask(0)
    os.umask(umask)
    files.write_text(str(tmp_path / 'fresh.txt'), 'x')
    assert os.stat(tmp_path / 'fresh.txt').st_mode & 0o777 == 0o666 & ~umask


def test_atomic_write_through_a_link_keeps_the_link(tmp_path):
    target = tmp_path / 'real.log'
    target.write_text('old\n')
    link = tmp_path / 'link.log'
    link.symlink_to(target)
    files.write_text(str(link), 'new\n')
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == 'new\n'
    assert sorted(os.listdir(tmp_path)) == ['link.log', 'real.log']


def test_atomic_write_to_a_pipe_writes_into_it(tmp_path):
    # A device or pipe (/dev/null, /dev/stdout) must never be renamed over with a file.
    import stat
    import threading
    pipe = tmp_path / 'pipe'
    os.mkfifo(pipe)
    received = []
    reader = threading.Thread(target=lambda: received.append(open(pipe).read()), daemon=True)
    reader.start()
    files.write_text(str(pipe), 'through the pipe\n')
    reader.join(timeout=10)
    assert stat.S_ISFIFO(os.stat(pipe).st_mode)
    assert received == ['through the pipe\n']
    assert os.listdir(tmp_path) == ['pipe']


def test_an_unexpected_error_mid_run_keeps_the_best_image(tmp_path, inputs, monkeypatch):
    from styletransfer.gatys import optimise
    real = optimise.AdamSteps.step

    def failing(self, i, best_total):
        if i == 30:
            raise RuntimeError('something inside MXNet broke')
        return real(self, i, best_total)
    monkeypatch.setattr(optimise.AdamSteps, 'step', failing)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RuntimeError):
        train.main([*inputs, *SCHEDULE, '-o', 'out.png'])
    kept = pixels(tmp_path / 'out-interrupted.png')
    assert kept.shape == (32, 48, 3) and kept.std() > 1
    assert not (tmp_path / 'out.png').exists()


@pytest.fixture
def midway(tmp_path, inputs, monkeypatch):
    """A run in folder `a` with relative paths, and a copy of its checkpoint after 10 of its
    20 iterations; the finished run's outputs are removed again."""
    run = tmp_path / 'a'
    run.mkdir()
    for path in inputs:
        shutil.copy(path, run)
    real_save = checkpoint.save

    def keep_first(path, state, extra=None):
        real_save(path, state, extra)
        if not (tmp_path / 'mid.ckpt').exists():
            shutil.copy(path, tmp_path / 'mid.ckpt')
    monkeypatch.setattr(checkpoint, 'save', keep_first)
    monkeypatch.chdir(run)
    assert train.main(['content.png', 'style.png', '--weights', 'random', '--ctx', 'cpu:1',
                       '--stage', '48x32:20:10', '-o', 'out.png', '--checkpoint-every', '10']) == 0
    monkeypatch.setattr(checkpoint, 'save', real_save)
    for name in os.listdir(run):
        if name.startswith('out'):
            os.remove(run / name)
    return run, tmp_path / 'mid.ckpt'


def test_resume_from_another_folder_writes_where_the_run_was(tmp_path, midway, monkeypatch):
    run, mid = midway
    elsewhere = tmp_path / 'b'
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert train.main(['--resume', str(mid), '--ctx', 'cpu:1']) == 0
    assert pixels(run / 'out.png').shape == (32, 48, 3)
    assert os.listdir(elsewhere) == []


def test_resume_refuses_a_picture_changed_since_the_checkpoint(tmp_path, midway, monkeypatch,
                                                               capsys):
    run, mid = midway
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(run / 'content.png')
    capsys.readouterr()
    assert train.main(['--resume', str(mid), '--ctx', 'cpu:1']) == 2
    err = capsys.readouterr().err.strip()
    assert 'content.png: changed since' in err and len(err.splitlines()) == 1
    assert not (run / 'out.png').exists()


def test_atomic_write_to_dev_stdout_when_it_is_a_pipe(tmp_path):
    # /dev/stdout resolves to /proc/PID/fd/pipe:[N], which os.stat cannot see: the device
    # check must look at the path as given.
    done = subprocess.run([sys.executable, '-c', 'from styletransfer import files; '
                           'files.write_text("/dev/stdout", "to the pipe\\n")'],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == 'to the pipe\n'


def test_the_resume_command_is_how_the_tool_was_started(monkeypatch):
    from styletransfer.cli import main as cli_main
    monkeypatch.setattr(sys, 'argv', ['/usr/local/bin/styletransfer', 'train'])
    assert cli_main._this_command() == ['/usr/local/bin/styletransfer']
    monkeypatch.setattr(sys, 'argv', [os.path.join(REPO, 'styletransfer', '__main__.py')])
    assert cli_main._this_command() == [sys.executable, '-m', 'styletransfer']
    monkeypatch.setattr(sys, 'argv', [os.path.join(REPO, 'docs', 'gallery.py')])
    assert cli_main._this_command() == [sys.executable, '-m', 'styletransfer']


def test_resume_after_the_run_folder_was_moved(tmp_path, midway, monkeypatch):
    run, mid = midway
    shutil.copy(mid, run / 'saved.ckpt')
    moved = tmp_path / 'renamed'
    os.rename(run, moved)
    monkeypatch.chdir(moved)
    assert train.main(['--resume', 'saved.ckpt', '--ctx', 'cpu:1']) == 0
    assert pixels(moved / 'out.png').shape == (32, 48, 3)
    assert not run.exists()
