"""The package installs: a wheel built from this checkout, installed into a fresh virtual
environment, gives a `styletransfer` command that runs from any folder with its bundled
pictures (package data), and `python -m styletransfer` is the same command.

The fresh environment gets its dependencies (mxnet and the rest, hundreds of MB) from this
test's own environment through a path file, not from the network; the package itself comes
only from the wheel."""
import glob
import os
import subprocess
import sys
import sysconfig

from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(command, cwd, timeout=600):
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_wheel_installs_a_command_that_runs_from_another_folder(tmp_path):
    wheels, venv, elsewhere = tmp_path / 'wheels', tmp_path / 'venv', tmp_path / 'elsewhere'
    elsewhere.mkdir()
    run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation',
         '-w', str(wheels), REPO], cwd=tmp_path)
    wheel, = glob.glob(str(wheels / 'styletransfer-*.whl'))
    run([sys.executable, '-m', 'venv', str(venv)], cwd=tmp_path)
    python = str(venv / 'bin' / 'python')
    site = run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
               cwd=tmp_path).strip()
    # A plain path line: this environment's packages are appended to sys.path, and none of its
    # .pth files (such as an editable install of the checkout) is run.
    with open(os.path.join(site, 'deps-from-test-env.pth'), 'w') as f:
        f.write(sysconfig.get_paths()['purelib'] + '\n')
    run([python, '-m', 'pip', 'install', '-q', '--no-deps', '--no-index', wheel], cwd=tmp_path)
    where = run([python, '-c', 'import styletransfer; print(styletransfer.__file__)'],
                cwd=elsewhere)
    assert where.startswith(str(venv)), where
    out = run([str(venv / 'bin' / 'styletransfer'), 'train', '--weights', 'random', '--stage',
               '64x48:5:3', '--ctx', 'cpu', '--no-progress', '-o', 'out.png'], cwd=elsewhere)
    assert 'rainier.jpg' in out and 'autumn-oak.jpg' in out     # the bundled pictures
    with Image.open(elsewhere / 'out.png') as img:
        assert img.size == (64, 48)
    assert sorted(os.listdir(elsewhere)) == ['out-losses.png', 'out-sheet.png',
                                             'out-stage1.png', 'out.png']
    usage = run([python, '-m', 'styletransfer', '--help'], cwd=elsewhere)
    assert 'train' in usage and 'compare-logs' in usage
    book = run([python, '-m', 'styletransfer', 'compare-logs', '--help'], cwd=elsewhere)
    assert 'book' in book
