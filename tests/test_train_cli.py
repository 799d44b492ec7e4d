"""scripts/train.py through its `main(argv)`: a whole two-stage run on tiny images with random
weights on cpu(1), the book's log format and schedule, the output files, and every refusal; plus
the core pipeline's hand-over of arrays, all of which must live on the run's context."""
import contextlib
import io
import json
import os
import re
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest
from PIL import Image

from conftest import picture, TRAIN_SCRIPT, train_script_main

from styletransfer.cli import train as cli_train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = TRAIN_SCRIPT


main = train_script_main()

CTX = mx.cpu(1)
BOOK_LINE = re.compile(r'^epoch +\d+, content loss \d+\.\d\d, style loss \d+\.\d\d, '
                       r'TV loss \d+\.\d\d, \d+\.\d\d sec$')
LR_LINE = re.compile(r'^change lr to \d\.\de-\d\d$')
# (width, height, iterations, decay) of the two stages, and the logging interval
STAGES = [(32, 24, 12, 5), (48, 36, 8, 4)]
LOG_EVERY = 3




def write_images(folder):
    """Content 40x30 (landscape) and style 30x45 (portrait): neither at a stage's size."""
    content, style = folder / 'content.png', folder / 'style.png'
    Image.fromarray(picture(40, 30, 1)).save(str(content))
    Image.fromarray(picture(30, 45, 2)).save(str(style))
    return str(content), str(style)


@pytest.fixture
def images(tmp_path):
    return write_images(tmp_path)


def stage_args(stages):
    args = []
    for w, h, iters, decay in stages:
        args += ['--stage', '%dx%d:%d:%d' % (w, h, iters, decay)]
    return args


QUICK = ['--weights', 'random', '--ctx', 'cpu:1', '--no-progress', '--stage', '16x16:2:1']


# ------------------------------------------------------------------------ a whole run, checked

@pytest.fixture(scope='module')
def full_run(tmp_path_factory):
    """One complete two-stage run, shared by the tests that check its parts."""
    folder = tmp_path_factory.mktemp('full')
    content, style = write_images(folder)
    argv = [content, style, '--weights', 'random', '--ctx', 'cpu:1', '--no-progress',
            '--log-every', str(LOG_EVERY), '--log-file', str(folder / 'run.log'),
            '--trace', str(folder / 'trace.jsonl'), '-o', str(folder / 'out.png')]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv + stage_args(STAGES))
    return code, out.getvalue(), err.getvalue(), folder


def expected_book_lines(iterations, decay, log_every, lr=0.01):
    """The book's loop, written out: (kind, epoch or lr) in print order."""
    lines = []
    for i in range(iterations):
        if i % log_every == 0 and i != 0:
            lines.append(('epoch', i))
        if i % decay == 0 and i != 0:
            lr *= 0.1
            lines.append(('lr', '%.1e' % lr))
    return lines


def book_lines(lines):
    return [line for line in lines if BOOK_LINE.match(line) or LR_LINE.match(line)]


def kinds(lines):
    out = []
    for line in lines:
        if BOOK_LINE.match(line):
            out.append(('epoch', int(line.split(',')[0].split()[1])))
        elif LR_LINE.match(line):
            out.append(('lr', line.split()[-1]))
    return out


def test_full_run_exits_0_and_prints_the_books_lines(full_run):
    code, out, err, _ = full_run
    assert code == 0, err
    lines = out.splitlines()
    headers = [i for i, line in enumerate(lines) if line.startswith('stage ')]
    assert [lines[i][:len('stage 1/2:')] for i in headers] == ['stage 1/2:', 'stage 2/2:']
    assert 'stage 1/2: 32x24, 12 iterations' in lines[headers[0]]
    assert 'stage 2/2: 48x36, 8 iterations' in lines[headers[1]]
    assert 'random' in lines[headers[0]]
    # every line is a comment, a header or one of the book's lines
    for line in lines:
        assert (line.startswith('# ') or line.startswith('stage ') or BOOK_LINE.match(line)
                or LR_LINE.match(line)), line
    stage1, stage2 = lines[headers[0] + 1:headers[1]], lines[headers[1] + 1:]
    assert kinds(stage1) == expected_book_lines(12, 5, LOG_EVERY)
    assert kinds(stage2) == expected_book_lines(8, 4, LOG_EVERY)
    # spelled out: stage 1 logs 3, 6, 9 and decays after 5 and 10; stage 2 logs 3, 6, decays at 4
    assert kinds(stage1) == [('epoch', 3), ('lr', '1.0e-03'), ('epoch', 6), ('epoch', 9),
                             ('lr', '1.0e-04')]
    assert kinds(stage2) == [('epoch', 3), ('lr', '1.0e-03'), ('epoch', 6)]
    assert '# context: cpu(1)' in out
    assert 'Traceback' not in err


def test_full_run_log_file_holds_the_printed_lines(full_run):
    code, out, _, folder = full_run
    assert code == 0
    log = (folder / 'run.log').read_text(encoding='utf-8').splitlines()
    printed = out.splitlines()
    assert book_lines(log) == book_lines(printed)
    assert len(book_lines(log)) == 8
    # the log is written as lines are printed, so it has everything up to the last '# wrote'
    assert log == printed[:len(log)]
    assert all(line.startswith('# wrote') for line in printed[len(log):])


def test_full_run_files(full_run):
    code, _, _, folder = full_run
    assert code == 0
    sizes = [(w, h) for w, h, _, _ in STAGES]
    for k, size in enumerate(sizes, 1):
        with Image.open(str(folder / ('out-stage%d.png' % k))) as img:
            assert img.size == size
            assert img.mode == 'RGB'
    final = np.asarray(Image.open(str(folder / 'out.png')))
    stage2 = np.asarray(Image.open(str(folder / 'out-stage2.png')))
    assert final.shape == (36, 48, 3)
    np.testing.assert_array_equal(final, stage2)
    with Image.open(str(folder / 'out.png')) as img:
        assert 'random' in img.text['weights']
        assert json.loads(img.text['config'])['weights'] == 'random'
    for name in ('out-losses.png', 'out-sheet.png'):
        with Image.open(str(folder / name)) as img:
            img.verify()
        with Image.open(str(folder / name)) as img:
            assert img.format == 'PNG' and img.size[0] > 50 and img.size[1] > 50
    # the inputs are untouched and no temporary files are left behind
    assert np.array_equal(np.asarray(Image.open(str(folder / 'content.png'))),
                          picture(40, 30, 1))
    assert not [n for n in os.listdir(str(folder)) if '.part' in n]


def test_full_run_trace(full_run):
    code, out, _, folder = full_run
    assert code == 0
    lines = (folder / 'trace.jsonl').read_text().splitlines()
    run = json.loads(lines[0])['run']
    assert 'random' in run['weights']
    assert run['context'] == 'cpu(1)'
    assert run['config']['weights'] == 'random'
    records = [json.loads(line) for line in lines[1:]]
    assert [(r['stage'], r['epoch']) for r in records] == [(1, 3), (1, 6), (1, 9), (2, 3), (2, 6)]
    printed = [line for line in out.splitlines() if BOOK_LINE.match(line)]
    for r, line in zip(records, printed):
        assert line.startswith('epoch %3d, content loss %.2f, style loss %.2f, TV loss %.2f, '
                               % (r['epoch'], r['content'], r['style'], r['tv']))
        assert r['total'] == pytest.approx(r['content'] + r['style'] + r['tv'], rel=1e-5)
        assert (r['width'], r['height']) == ((32, 24) if r['stage'] == 1 else (48, 36))
    # lr used by each logged iteration: decay after 5, 10 (stage 1) and 4 (stage 2)
    assert [r['lr'] for r in records] == pytest.approx([1e-2, 1e-3, 1e-3, 1e-2, 1e-3])
    for stage in (1, 2):
        totals = [r['total'] for r in records if r['stage'] == stage]
        assert totals[0] > totals[-1]


def test_default_output_name_says_random_weights(tmp_path, images, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(list(images) + QUICK) == 0
    assert (tmp_path / 'content-style-random-weights.png').is_file()
    assert (tmp_path / 'content-style-random-weights-stage1.png').is_file()
    assert not (tmp_path / 'content-style.png').exists()
    assert '# wrote content-style-random-weights.png' in capsys.readouterr().out


def test_book_decay_and_logging_iterations(tmp_path, images, capsys):
    code = main(list(images) + ['--weights', 'random', '--ctx', 'cpu:1', '--no-progress',
                                '--stage', '32x24:21:5', '--log-every', '5',
                                '-o', str(tmp_path / 'o.png')])
    assert code == 0
    lines = book_lines(capsys.readouterr().out.splitlines())
    assert kinds(lines) == [('epoch', 5), ('lr', '1.0e-03'), ('epoch', 10), ('lr', '1.0e-04'),
                            ('epoch', 15), ('lr', '1.0e-05'), ('epoch', 20), ('lr', '1.0e-06')]
    assert lines[1] == 'change lr to 1.0e-03'
    assert lines[-1] == 'change lr to 1.0e-06'


def test_divergence_in_the_first_iteration(tmp_path, images, capsys):
    # A pixel checkerboard has TV about 4.4 on the normalised image; 1e38 (a float32 number)
    # times that overflows float32, so the very first loss is inf and the stage has no finite
    # image at all.
    board = (np.indices((16, 16)).sum(axis=0) % 2 * 255).astype(np.uint8)   # stage size
    content = tmp_path / 'board.png'
    Image.fromarray(np.stack([board] * 3, axis=-1)).save(str(content))
    code = main([str(content), images[1]] + QUICK + ['--tv-weight', '1e38',
                                                     '-o', str(tmp_path / 'o.png')])
    captured = capsys.readouterr()
    assert code == 1
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and 'inf' in err[0] and 'Traceback' not in captured.err
    assert not (tmp_path / 'o.png').exists()
    # the log must not name an image that was not written
    said = [line for line in captured.out.splitlines() if 'diverged' in line]
    assert said
    for line in said:
        for word in line.replace(',', ' ').split():
            if word.endswith('.png'):
                assert os.path.exists(word), 'the log names a file that does not exist: ' + line


def test_weights_beyond_float32_refused(tmp_path, images, capsys):
    # 1e39 is finite for Python but inf in the float32 the losses are computed in
    message = refused(capsys, list(images) + QUICK + ['--style-weight', '1e39',
                                                      '-o', str(tmp_path / 'o.png')])
    assert '--style-weight' in message


def test_the_script_is_a_thin_wrapper_around_the_cli(images, tmp_path):
    assert main is cli_train.main
    # run as a program: the exit code and the one-line error reach the shell
    done = subprocess.run([sys.executable, SCRIPT, images[0], images[1], '--ctx', 'bogus',
                           '-o', str(tmp_path / 'o.png')],
                          capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith('train.py: ')]
    assert errors == ["train.py: error: --ctx 'bogus': expected auto, cpu, cpu:N, gpu or gpu:N"]
    assert 'Traceback' not in done.stderr


# ---------------------------------------------------------------------------------- refusals

def refused(capsys, argv):
    """Run main, expect exit 2 and one line on stderr without a traceback; return that line."""
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2
    err_lines = captured.err.strip().splitlines()
    assert len(err_lines) == 1, captured.err
    assert err_lines[0].startswith('train.py: error: ')
    assert 'Traceback' not in captured.err
    assert 'epoch' not in captured.out
    return err_lines[0]


def test_existing_output_refused_then_accepted_with_overwrite(tmp_path, images, capsys):
    out = tmp_path / 'out.png'
    out.write_bytes(b'precious')
    message = refused(capsys, list(images) + QUICK + ['-o', str(out)])
    assert str(out) in message and '--overwrite' in message
    assert out.read_bytes() == b'precious'
    assert not (tmp_path / 'out-stage1.png').exists()
    assert main(list(images) + QUICK + ['-o', str(out), '--overwrite']) == 0
    with Image.open(str(out)) as img:
        assert img.size == (16, 16)


def test_existing_stage_file_refused(tmp_path, images, capsys):
    (tmp_path / 'out-stage1.png').write_bytes(b'old')
    message = refused(capsys, list(images) + QUICK + ['-o', str(tmp_path / 'out.png')])
    assert 'out-stage1.png' in message
    assert (tmp_path / 'out-stage1.png').read_bytes() == b'old'


def test_output_equal_to_an_input_refused(images, capsys):
    before = open(images[0], 'rb').read()
    message = refused(capsys, list(images) + QUICK + ['-o', images[0], '--overwrite'])
    assert 'input' in message
    assert open(images[0], 'rb').read() == before


def test_missing_output_folder_refused(tmp_path, images, capsys):
    message = refused(capsys, list(images) + QUICK + ['-o', str(tmp_path / 'no' / 'out.png')])
    assert 'does not exist' in message and str(tmp_path / 'no') in message


def test_bad_output_extension_refused(tmp_path, images, capsys):
    message = refused(capsys, list(images) + QUICK + ['-o', str(tmp_path / 'out.gif')])
    assert '.png' in message


def test_only_one_image_refused(images, capsys):
    message = refused(capsys, [images[0]] + QUICK)
    assert 'CONTENT and STYLE' in message


@pytest.mark.parametrize('stage', ['64x48:10', '64x48', '64*48:10:5', 'axb:1:1',
                                   '64x48:ten:5', '64x48:10:5:0.1:9', '64x48x2:10:5'])
def test_bad_stage_syntax_refused(tmp_path, images, capsys, stage):
    message = refused(capsys, list(images) + ['--weights', 'random', '--ctx', 'cpu:1',
                                              '--stage', stage, '-o', str(tmp_path / 'o.png')])
    assert repr(stage) in message and 'WIDTHxHEIGHT' in message


@pytest.mark.parametrize('size', ['8x8', '15x64', '64x15'])
def test_stage_too_small_for_conv5_1_refused(tmp_path, images, capsys, size):
    message = refused(capsys, list(images) + ['--weights', 'random', '--ctx', 'cpu:1',
                                              '--stage', size + ':5:5',
                                              '-o', str(tmp_path / 'o.png')])
    assert 'conv5_1' in message and '16' in message and size in message


@pytest.mark.parametrize('stage', ['64x48:0:5', '64x48:5:0', '64x48:5:5:0'])
def test_stage_values_out_of_range_refused(tmp_path, images, capsys, stage):
    message = refused(capsys, list(images) + ['--weights', 'random', '--ctx', 'cpu:1',
                                              '--stage', stage, '-o', str(tmp_path / 'o.png')])
    assert 'stage 1' in message


def test_gpu_refused_on_this_machine(tmp_path, images, capsys):
    # CPU-only machines run this suite; on a machine with n GPUs, gpu:n is still missing
    n = mx.context.num_gpus()
    specs = ['gpu:%d' % n, 'gpu:%d' % (n + 3)] + (['gpu', 'gpu:0'] if n == 0 else [])
    for spec in specs:
        message = refused(capsys, list(images) + ['--weights', 'random', '--ctx', spec,
                                                  '-o', str(tmp_path / 'o.png')])
        assert spec in message and '%d GPU' % n in message
        if n == 0:
            assert '--ctx cpu' in message
    assert not (tmp_path / 'o.png').exists()


@pytest.mark.parametrize('spec', ['bogus', 'cpu:x', 'tpu:0', 'cpu:-1'])
def test_bad_ctx_refused(tmp_path, images, capsys, spec):
    message = refused(capsys, list(images) + ['--weights', 'random', '--ctx', spec,
                                              '-o', str(tmp_path / 'o.png')])
    assert repr(spec) in message and 'cpu:N' in message


def test_non_image_content_refused(tmp_path, images, capsys):
    fake = tmp_path / 'notes.png'
    fake.write_text('this is not a picture\n')
    message = refused(capsys, [str(fake), images[1]] + QUICK + ['-o', str(tmp_path / 'o.png')])
    assert str(fake) in message and 'not an image' in message


def test_missing_content_refused(tmp_path, images, capsys):
    message = refused(capsys, [str(tmp_path / 'nope.jpg'), images[1]] + QUICK
                      + ['-o', str(tmp_path / 'o.png')])
    assert 'nope.jpg' in message and 'no such file' in message


def test_unknown_layer_refused(tmp_path, images, capsys):
    message = refused(capsys, list(images) + QUICK + ['--content-layers', 'conv9_9',
                                                      '-o', str(tmp_path / 'o.png')])
    assert 'conv9_9' in message


def test_negative_weight_refused(tmp_path, images, capsys):
    message = refused(capsys, list(images) + QUICK + ['--tv-weight', '-1',
                                                      '-o', str(tmp_path / 'o.png')])
    assert '--tv-weight' in message


def test_debug_shows_the_exception(tmp_path, images):
    from styletransfer.errors import StyleTransferError
    with pytest.raises(StyleTransferError):
        main(list(images) + ['--ctx', 'bogus', '--debug', '-o', str(tmp_path / 'o.png')])


# ------------------------------------------------- numbers that fail only later, refused now

def test_learning_rate_decaying_below_what_adam_takes_refused(tmp_path, images, capsys):
    # 0.01 decays after iterations 10, 20, ...: before the last of 352 steps it has decayed 35
    # times, to 1e-37, which could reach MXNet's Adam below float32's smallest normal number
    # (Gluon hands it the rate times a bias correction down to 0.15). 341 steps end at 1e-35
    # and run to the end.
    message = refused(capsys, list(images) + ['--weights', 'random', '--ctx', 'cpu:1',
                                              '--stage', '64x48:352:10',
                                              '-o', str(tmp_path / 'o.png')])
    assert 'stage 1' in message and 'decay 35 times' in message
    assert main(list(images) + QUICK[:-1] + ['64x48:341:10', '-o', str(tmp_path / 'o.png')]) == 0


@pytest.mark.parametrize('weights', ['inf,1', '1e308,1e308', 'nan,1'])
def test_style_blend_weights_that_are_not_finite_refused(tmp_path, images, capsys, weights):
    first, second = weights.split(',')
    blend = '%s:%s,%s:%s' % (images[1], first, images[1], second)
    message = refused(capsys, [images[0], '--style-blend', blend] + QUICK
                      + ['-o', str(tmp_path / 'o.png')])
    assert '--style-blend' in message and 'finite' in message


def test_threads_from_the_environment(monkeypatch):
    from styletransfer import device
    from styletransfer.errors import StyleTransferError
    cores = len(os.sched_getaffinity(0))
    monkeypatch.setenv('OMP_NUM_THREADS', '')
    assert device.set_threads() == cores
    monkeypatch.setenv('OMP_NUM_THREADS', ' 3 ')
    assert device.set_threads() == 3
    # OpenMP's nested form is valid OpenMP, but MXNet 1.9.1 aborts on it when it loads.
    for bad in ('abc', '0', '-2', '3,1', '4, 2'):
        monkeypatch.setenv('OMP_NUM_THREADS', bad)
        with pytest.raises(StyleTransferError, match='OMP_NUM_THREADS'):
            device.set_threads()
    with pytest.raises(StyleTransferError, match='threads must be 1..') as e:
        device.set_threads(100000)
    assert e.value.field == 'threads'
    assert device.set_threads(2) == 2


def test_threads_option_is_checked_before_anything_else(tmp_path, images, capsys):
    message = refused(capsys, list(images) + QUICK + ['--threads', '100000',
                                                      '-o', str(tmp_path / 'o.png')])
    assert message.startswith('train.py: error: --threads must be 1..')


def test_ctrl_c_while_loading_is_one_line(monkeypatch, capsys):
    from styletransfer import device

    def interrupted(threads):
        raise KeyboardInterrupt
    monkeypatch.setattr(device, 'set_threads', interrupted)
    assert cli_train.main(['--weights', 'random']) == 130
    captured = capsys.readouterr()
    assert captured.err.strip() == 'train.py: interrupted' and 'Traceback' not in captured.err


def test_existing_file_behind_a_link_refused_and_a_device_accepted(tmp_path, images, capsys):
    target = tmp_path / 'kept.log'
    target.write_text('a log worth keeping\n')
    (tmp_path / 'link.log').symlink_to(target)
    message = refused(capsys, list(images) + QUICK + ['-o', str(tmp_path / 'o.png'),
                                                      '--log-file', str(tmp_path / 'link.log')])
    assert 'exists' in message and target.read_text() == 'a log worth keeping\n'
    assert main(list(images) + QUICK + ['-o', str(tmp_path / 'o.png'),
                                        '--log-file', os.devnull]) == 0
    import stat
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_pictures_to_a_device_and_a_file_as_folder_refused(tmp_path, images, capsys):
    (tmp_path / 'o-sheet.png').symlink_to(os.devnull)
    message = refused(capsys, list(images) + QUICK + ['-o', str(tmp_path / 'o.png')])
    assert 'o-sheet.png: not a regular file' in message
    (tmp_path / 'afile').write_text('not a folder')
    message = refused(capsys, list(images) + QUICK + ['-o', str(tmp_path / 'afile' / 'o.png')])
    assert 'output folder does not exist' in message
