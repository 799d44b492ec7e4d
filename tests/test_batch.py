"""styletransfer batch: the plan and its names, the manifest and the re-run, bad inputs, and the
Dask side (a LocalCluster of 2 worker processes of 1 thread, started once for the session):
workers that die mid-item, and a poison item that kills every worker it touches.

Items are tiny (random weights, one 32x24 stage of 3 iterations, the layers up to conv2_1 only)
so that every batch takes seconds; the pictures are random noise made here.
"""
import functools
import hashlib
import json
import os
import re
import sys

import numpy as np
import pytest
from PIL import Image

from styletransfer.batch import engine, items, manifest, methods
from styletransfer.batch.worker import stylize_item
from styletransfer.cli import main as cli
from styletransfer.errors import StyleTransferError

STAGE = '32x24:3:1'
WIDTH, HEIGHT = 32, 24
CONTENT_LAYERS, STYLE_LAYERS = 'conv2_1', 'conv1_1,conv2_1'   # a VGG-19 cut after 6 layers
FAST = ['--weights', 'random', '--stage', STAGE, '--ctx', 'cpu', '--content-layers',
        CONTENT_LAYERS, '--style-layers', STYLE_LAYERS]


def picture(path, seed, width=40, height=30):
    pixels = np.random.RandomState(seed).randint(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return str(path)


def sha(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def lines(outdir):
    with open(os.path.join(outdir, 'manifest.jsonl')) as f:
        return [json.loads(line) for line in f]


@pytest.fixture
def pictures(tmp_path):
    """Two contents (a, b) and two styles (s1, s2) in their own folders."""
    (tmp_path / 'photos').mkdir()
    (tmp_path / 'paintings').mkdir()
    return {name: picture(tmp_path / folder / (name + '.png'), seed)
            for seed, (folder, name) in enumerate([('photos', 'a'), ('photos', 'b'),
                                                   ('paintings', 's1'), ('paintings', 's2')])}


@pytest.fixture(scope='session')
def cluster():
    """One LocalCluster for the whole session; an item may kill one worker and be run again."""
    import cloudpickle
    # The fault-making work functions below live in this test module, which the workers need
    # not import: send them by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with engine.local_cluster(2, threads=1, retries=1, dashboard=':0') as client:
        yield client


@pytest.fixture
def client(cluster):
    cluster.wait_for_workers(2, timeout=60)   # killed workers come back between tests
    return cluster


def batch(capsys, *argv):
    code = cli.main(['batch', *argv])
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------ plan and names

def test_output_names_are_safe_and_unique(tmp_path):
    for folder in ('photos', 'more', 'x', 'UP'):
        (tmp_path / folder).mkdir()
    paths = [str(tmp_path / p) for p in ('photos/a.jpg', 'more/a.jpg', 'x/a.png',
                                         'x/we ird--name-.jpg', 'UP/A.tif', 'x/.hidden.png')]
    names = items.labels([os.path.abspath(p) for p in paths])
    assert list(names.values()) == ['photos_a.jpg', 'more_a.jpg', 'a.png', 'we_ird-name',
                                    'A.tif', 'hidden']
    made = items.make_items([(paths[0], paths[3]), (paths[1], paths[3]), (paths[0], paths[3])])
    assert [i.output for i in made] == ['photos_a.jpg--we_ird-name.png',
                                        'more_a.jpg--we_ird-name.png']   # a pair given twice: once
    # '--' is the separator only: a name never starts or ends with '-' nor holds '--'.
    assert items.safe('--a---b-') == 'a-b' and items.safe('***') == '___'
    assert items.safe('x' * 300) == 'x' * 49 + '_' + 'x' * 49


def test_folders_pairs_and_refusals(tmp_path, pictures):
    (tmp_path / 'photos' / 'notes.txt').write_text('not a picture')
    found = items.collect([str(tmp_path / 'photos'), pictures['a']], 'content')
    assert found == [pictures['a'], pictures['b']]        # the folder's pictures, each once
    csv = tmp_path / 'pairs.csv'
    csv.write_text('content,style\n# a comment\nphotos/b.png, paintings/s2.png\n\n'
                   'photos/a.png,%s\n' % pictures['s1'])
    assert items.read_pairs(str(csv)) == [(pictures['b'], pictures['s2']),
                                          (pictures['a'], pictures['s1'])]
    csv.write_text('photos/a.png\n')
    with pytest.raises(StyleTransferError, match=r'pairs.csv line 1: expected CONTENT,STYLE'):
        items.read_pairs(str(csv))
    with pytest.raises(StyleTransferError, match=r'content .*nope.png: no such file'):
        items.collect([str(tmp_path / 'nope.png')], 'content')


def test_command_line_refusals_run_nothing(tmp_path, pictures, capsys):
    code, help_text, _ = batch(capsys, '--help')
    assert code == 0 and '--scheduler tcp://HOST:PORT' in help_text
    assert re.search(r'about\s+1%;', help_text)   # train's options' help, rendered through ours
    out = str(tmp_path / 'out')
    code, _, err = batch(capsys, '--content', pictures['a'], '--style', pictures['s1'], '-o',
                         out, '--method', 'fast')
    assert code == 2 and err.strip() == (
        'styletransfer batch: error: --method fast: a per-style network has no style pictures '
        'to pair with the contents; use styletransfer stylize on a folder')
    code, _, err = batch(capsys, '--content', pictures['a'], '-o', out)
    assert code == 2 and 'give --content and --style' in err
    code, _, err = batch(capsys, '--content', pictures['a'], '--style', pictures['s1'], '-o',
                         out, '--stage', '8x8:1:1', '--weights', 'random')
    assert code == 2 and 'stage 1: 8x8 is too small' in err
    assert not os.path.exists(out)


def test_without_dask_the_items_run_in_this_process(tmp_path, pictures, capsys, monkeypatch):
    from styletransfer.cli import batch as command
    monkeypatch.setattr(command, 'have_dask', lambda: False)
    out = str(tmp_path / 'out')
    code, _, err = batch(capsys, '--content', pictures['a'], '--style', pictures['s1'], '-o',
                         out, '--scheduler', 'tcp://127.0.0.1:1', *FAST)
    assert code == 2 and err.strip().endswith('--scheduler needs Dask: pip install '
                                              '"styletransfer[batch]"')
    code, stdout, err = batch(capsys, '--content', pictures['a'], '--style', pictures['s1'],
                              '-o', out, '--workers', '2', *FAST)
    assert code == 0 and 'Dask is not installed' in err and 'dashboard' not in stdout
    assert [(r['status'], r['worker']) for r in lines(out)] == [
        ('done', '%s:%d' % (os.uname()[1], os.getpid()))]


def test_reasons_are_one_line():
    from styletransfer.batch.worker import one_line
    assert one_line(StyleTransferError('x.png: not an image file Pillow can read')) == \
        'x.png: not an image file Pillow can read'
    assert one_line(RuntimeError('Error during deserialization.\nThe scheduler and client\n'
                                 'differ.\n\nMore below.')) == (
        'RuntimeError: Error during deserialization. The scheduler and client differ.')
    assert one_line(ValueError('Traceback (most recent call last):\n  File "a", line 1\n'
                               'MXNetError: Check failed: x')) == 'ValueError: MXNetError: ' \
                                                                  'Check failed: x'
    assert one_line(MemoryError()) == 'MemoryError'
    assert len(one_line(ValueError('y' * 1000))) == 300


def test_manifest_file_is_appended_and_locked(tmp_path):
    path = str(tmp_path / manifest.NAME)
    with manifest.append_file(path, lock=True) as first:
        first.write('{"output": "a--b.png", "status": "done"}')
        with pytest.raises(StyleTransferError, match='another batch is writing this folder'):
            manifest.append_file(path, lock=True)
    with manifest.append_file(path, lock=True) as again:
        again.write('not json')
        again.write('{"output": "a--b.png", "status": "failed"}')
    assert manifest.read(path) == {'a--b.png': {'output': 'a--b.png', 'status': 'failed'}}


# ----------------------------------------------------------------- the batch on Dask workers

def test_grid_on_the_cluster_matches_a_run_in_this_process(tmp_path, pictures, client, capsys):
    out = str(tmp_path / 'out')
    code, stdout, _ = batch(capsys, '--content', str(tmp_path / 'photos'), '--style',
                            pictures['s1'], pictures['s2'], '-o', out, '--scheduler',
                            client.scheduler.address, *FAST)
    assert code == 0
    assert 'dashboard: http://' in stdout and '4 items: 4 done, 0 failed, 0 up to date' in stdout
    names = ['a--s1.png', 'a--s2.png', 'b--s1.png', 'b--s2.png']
    assert sorted(os.listdir(out)) == sorted(names + ['batch.log', 'manifest.jsonl'])
    records = {r['output']: r for r in lines(out)}
    assert sorted(records) == names
    for name, r in records.items():
        content, style = name[:-4].split('--')
        with Image.open(os.path.join(out, name)) as img:
            assert img.size == (WIDTH, HEIGHT) and img.mode == 'RGB'
            assert img.text['Weights'].startswith('random (seed 0), NOT pretrained')
        assert r['status'] == 'done' and r['reason'] is None
        assert r['content'] == {'path': pictures[content], 'sha256': sha(pictures[content])}
        assert r['style'] == {'path': pictures[style], 'sha256': sha(pictures[style])}
        assert r['output_sha256'] == sha(os.path.join(out, name))
        assert r['settings']['stages'] == [STAGE + ':0.01'] and r['method'] == 'gatys'
        assert r['model']['weights'] == 'random' and 'NOT pretrained' in r['weights']
        assert r['seconds'] > 0 and (r['width'], r['height']) == (WIDTH, HEIGHT)
        assert r['threads'] == 1 and r['worker'] != '%s:%d' % (os.uname()[1], os.getpid())
    with open(os.path.join(out, 'batch.log')) as f:
        log = f.read()
    assert log.count(' done ') == 4 and 'finished: 4 done, 0 failed, 0 skipped' in log

    # The same items in this process, one after the other: the same pictures, byte for byte.
    here = str(tmp_path / 'here')
    code, _, _ = batch(capsys, '--content', pictures['a'], pictures['b'], '--style',
                       pictures['s1'], pictures['s2'], '-o', here, '--workers', '0', *FAST)
    assert code == 0
    assert {r['output']: r['output_sha256'] for r in lines(here)} == {
        n: records[n]['output_sha256'] for n in names}
    assert {r['worker'] for r in lines(here)} == {'%s:%d' % (os.uname()[1], os.getpid())}


def test_rerun_skips_what_is_done_and_redoes_what_changed(tmp_path, pictures, client, capsys):
    out = str(tmp_path / 'out')
    argv = ['--content', pictures['a'], pictures['b'], '--style', pictures['s1'], '-o', out,
            '--scheduler', client.scheduler.address, *FAST]
    assert batch(capsys, *argv)[0] == 0
    first = {r['output']: r for r in lines(out)}
    stamps = {n: os.stat(os.path.join(out, n)).st_mtime_ns for n in first}

    code, stdout, _ = batch(capsys, *argv)                  # nothing changed: all skipped
    assert code == 0 and '2 items: 0 done, 0 failed, 2 up to date' in stdout
    again = lines(out)[2:]
    assert [r['status'] for r in again] == ['skipped', 'skipped']
    assert all(r['output_sha256'] == first[r['output']]['output_sha256'] for r in again)
    assert stamps == {n: os.stat(os.path.join(out, n)).st_mtime_ns for n in first}

    picture(pictures['a'], seed=99)                         # a changed input
    assert batch(capsys, *argv)[0] == 0
    third = {r['output']: r for r in lines(out)[4:]}
    assert third['a--s1.png']['status'] == 'done' and third['b--s1.png']['status'] == 'skipped'
    assert third['a--s1.png']['content']['sha256'] == sha(pictures['a']) != \
        first['a--s1.png']['content']['sha256']

    with open(os.path.join(out, 'b--s1.png'), 'ab') as f:  # an output that is not the one made
        f.write(b'x')
    assert batch(capsys, *argv)[0] == 0
    assert {r['output']: r['status'] for r in lines(out)[6:]} == {'a--s1.png': 'skipped',
                                                                   'b--s1.png': 'done'}

    assert batch(capsys, *argv, '--content-weight', '2')[0] == 0   # a changed setting
    last = lines(out)[8:]
    assert [r['status'] for r in last] == ['done', 'done']
    assert all(r['settings']['content_weight'] == 2.0 for r in last)


def test_bad_inputs_fail_their_own_items_and_the_batch_goes_on(tmp_path, pictures, client,
                                                              capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, 'isatty', lambda: True)   # as on a terminal: a bar
    folder = tmp_path / 'photos'
    (folder / 'b.png').unlink()
    (folder / 'b_broken.jpg').write_bytes(b'this is not a picture')   # between a and c
    picture(folder / 'c.png', seed=7)
    picture(folder / 'd_small.png', seed=8, width=1, height=1)       # conv2_1 needs 2
    out = str(tmp_path / 'out')
    code, _, err = batch(capsys, '--content', str(folder), '--style', pictures['s1'], '-o',
                         out, '--scheduler', client.scheduler.address, *FAST)
    assert code == 1
    records = {r['output']: r for r in lines(out)}
    assert {n: r['status'] for n, r in records.items()} == {
        'a--s1.png': 'done', 'b_broken--s1.png': 'failed', 'c--s1.png': 'done',
        'd_small--s1.png': 'failed'}
    assert records['b_broken--s1.png']['reason'] == (
        '%s: not an image file Pillow can read' % (folder / 'b_broken.jpg'))
    assert records['d_small--s1.png']['reason'] == (
        '%s: 1x1 is too small: the layers used need at least 2 pixels on each side'
        % (folder / 'd_small.png'))
    assert sorted(n for n in os.listdir(out) if n.endswith('.png')) == ['a--s1.png',
                                                                        'c--s1.png']
    assert 'failed: b_broken--s1.png: %s' % records['b_broken--s1.png']['reason'] in err
    assert '4/4' in err and 'failed=2' in err          # the bar's last state


def crash_once(content, style, task, spec, victim, marker):
    """The real work, except that the worker running `victim` the first time dies mid-item."""
    if os.path.basename(task['content']) + os.path.basename(task['style']) == victim:
        if not os.path.exists(marker):
            with open(marker, 'w') as f:
                f.write(str(os.getpid()))
            os._exit(1)
    return stylize_item(content, style, task, spec)


def poison(content, style, task, spec, victim):
    """The real work, except that `victim` kills every worker that runs it."""
    if os.path.basename(task['content']) + os.path.basename(task['style']) == victim:
        os._exit(1)
    return stylize_item(content, style, task, spec)


def _run(client, pictures, out, work):
    import styletransfer as st
    plan = items.grid([pictures['a'], pictures['b']], [pictures['s1'], pictures['s2']])
    spec = methods.Spec('gatys', st.Network(weights='random', content_layers=CONTENT_LAYERS,
                                            style_layers=STYLE_LAYERS), 'cpu', 1)
    return engine.run(plan, spec, st.Settings(stages=[STAGE]), out,
                      engine.OnDask(client, work=work))


def test_a_worker_that_dies_mid_item_has_the_item_run_again(tmp_path, pictures, client):
    marker = str(tmp_path / 'died')
    summary = _run(client, pictures, str(tmp_path / 'out'),
                   functools.partial(crash_once, victim='b.pngs1.png', marker=marker))
    assert (summary.done, summary.failed, summary.exit_code) == (4, 0, 0)
    with open(marker) as f:
        dead = int(f.read())
    again = [r for r in summary.records if r['output'] == 'b--s1.png'][0]
    assert again['status'] == 'done' and again['output_sha256'] == sha(
        str(tmp_path / 'out' / 'b--s1.png'))
    assert int(again['worker'].rsplit(':', 1)[1]) != dead     # another worker process ran it


def test_a_poison_item_is_failed_after_the_retries(tmp_path, pictures, client):
    summary = _run(client, pictures, str(tmp_path / 'out'),
                   functools.partial(poison, victim='a.pngs2.png'))
    assert (summary.done, summary.failed, summary.exit_code) == (3, 1, 1)
    failed = [r for r in summary.records if r['status'] == 'failed']
    assert [r['output'] for r in failed] == ['a--s2.png']
    # allowed-failures is 1 in this cluster: two workers died, then the item was given up.
    assert failed[0]['reason'].startswith('2 workers died running it (the last tcp://')
    assert failed[0]['reason'].endswith('); not retried again')
    assert not os.path.exists(str(tmp_path / 'out' / 'a--s2.png'))


def test_adain_items_are_the_pictures_of_its_stylizer(tmp_path, pictures, capsys):
    """--method adain: content x style items through AdaIN (files in the authors' layout with
    random values), each the picture FastStylizer gives."""
    import styletransfer as st
    from test_adain import DECODER, ENCODER, as_state, random_conv
    from torch_pickles import state_dict, write_pth
    rng = np.random.default_rng(1)
    encoder = write_pth(str(tmp_path / 'vgg_normalised.pth'), state_dict(as_state(
        {i: random_conv(rng, *shape) for i, shape in ENCODER.items()})), 'zip')
    decoder = write_pth(str(tmp_path / 'decoder.pth'), state_dict(as_state(
        {i: random_conv(rng, out, c, 3) for i, (out, c) in DECODER.items()})), 'zip')
    out = str(tmp_path / 'out')
    code, _, err = batch(capsys, '--content', pictures['a'], '--style', pictures['s1'],
                         pictures['s2'], '-o', out, '--method', 'adain', '--decoder', decoder,
                         '--encoder', encoder, '--alpha', '0.7', '--ctx', 'cpu')
    assert code == 0, err
    fast = st.FastStylizer(ctx='cpu', decoder=decoder, encoder=encoder)
    for style in ('s1', 's2'):
        expected = fast.stylize(st.Inputs(pictures['a'], pictures[style]),
                                st.FastSettings(alpha=0.7)).picture
        got = np.asarray(Image.open(os.path.join(out, 'a--%s.png' % style)))
        np.testing.assert_array_equal(got, expected)
    records = lines(out)
    assert [r['status'] for r in records] == ['done', 'done']
    assert records[0]['settings']['alpha'] == 0.7 and 'AdaIN decoder' in records[0]['weights']
    code, _, err = batch(capsys, '--content', pictures['a'], '--style', pictures['s1'], '-o',
                         str(tmp_path / 'x'), '--method', 'adain')
    assert code == 2 and '--decoder' in err
