"""The memory estimate: conservative against a measured run, and a clear refusal."""
import os
import subprocess
import sys

import pytest

from styletransfer import resources
from styletransfer.cli import train
from styletransfer.settings import Settings, Stage
from styletransfer.errors import StyleTransferError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# VmHWM, not ru_maxrss: after fork and exec, Linux reports the larger of the parent's
# resident size and the child's as ru_maxrss, and this test's parent may hold a finished run.
PEAK = '''
import sys
from styletransfer.cli.train import main
code = main(sys.argv[1:])
with open('/proc/self/status') as f:
    print([int(l.split()[1]) * 1024 for l in f if l.startswith('VmHWM:')][0])
'''


def test_estimate_covers_a_measured_run_without_wild_overshoot(tmp_path):
    args = ['--weights', 'random', '--ctx', 'cpu', '--stage', '225x150:3:100', '-o',
            str(tmp_path / 'o.png'), '--log-every', '1000']
    run = subprocess.run([sys.executable, '-c', PEAK, *args], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path, env=dict(os.environ, PYTHONPATH=REPO))
    assert run.returncode == 0, run.stderr
    measured = int(run.stdout.strip().splitlines()[-1])
    estimate = resources.estimate_peak_bytes(Settings(stages=(Stage(225, 150, 3, 100),)))
    assert measured <= estimate <= 2 * measured


def test_estimate_grows_with_pixels_and_lbfgs_history():
    small = Settings(stages=(Stage(225, 150, 1, 1), Stage(450, 300, 1, 1)))
    large = Settings(stages=(Stage(900, 600, 1, 1),))
    assert resources.estimate_peak_bytes(small) < resources.estimate_peak_bytes(large)
    assert (resources.estimate_peak_bytes(Settings(stages=small.stages, optimizer='lbfgs'))
            > resources.estimate_peak_bytes(small))


def test_too_large_for_memory_names_estimate_and_size_that_fits():
    config = Settings(stages=(Stage(4000, 3000, 1, 1),))
    with pytest.raises(StyleTransferError) as e:
        resources.check_memory(config, available=2e9)
    message = str(e.value)
    assert '4000x3000' in message and '2.0 GB is available' in message
    fits = message.rsplit('about ', 1)[1].split('x')
    w, h = int(fits[0]), int(fits[1])
    assert abs(w / h - 4 / 3) < 0.01
    assert resources.estimate_peak_bytes(Settings(stages=(Stage(w, h, 1, 1),))) <= 2e9
    assert resources.estimate_peak_bytes(Settings(stages=(Stage(w + 40, h + 30, 1, 1),))) > 2e9


def test_train_refuses_before_loading_anything(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(resources, 'available_bytes', lambda: 1e9)
    monkeypatch.chdir(tmp_path)
    code = train.main(['--weights', 'random', '--ctx', 'cpu', '--stage', '2000x1500:1:1'])
    err = capsys.readouterr().err
    assert code == 2 and 'needs about' in err and 'Traceback' not in err
    assert os.listdir(tmp_path) == []
