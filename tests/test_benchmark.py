"""benchmarks/: real workers on a tiny size (ours through the public API, the book's plain step,
the peer through its wrapper), then the arithmetic, parsing and report on made-up numbers, and
the orchestration with the measurements faked (both CPU classes). No assertion is about speed."""
import json
import os
import statistics
import subprocess
import sys

import pytest

import styletransfer as st
from benchmarks import bench, summary, workers
from styletransfer import device

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PEER_SAMPLE = """size 225x150 threads 2 torch 2.13.0+cpu
peer s/iter (median of 5) 0.4321
conv GFLOP forward 23.8, forward+input-grad 47.6
sgemm GFLOP/s here 120.5 -> bound s/iter 0.3884
3x3 conv GFLOP/s here 310.2 -> conv-rate bound s/iter 0.1509
"""
ZEN4_FLAGS = {'sse2', 'avx', 'avx2', 'fma', 'avx512f', 'avx512bw', 'avx512_bf16'}
AVX2_FLAGS = {'sse2', 'avx', 'avx2', 'fma'}


def record(kind, size, number, median_s, peak_mb=500.0, **extra):
    extra.setdefault('wall_s', 10.0)
    extra.setdefault('cpu_s', 15.0)
    return dict(kind=kind, size=size, round=number, ok=True, median_s=median_s,
                peak_mb=peak_mb, **extra)


def three_rounds():
    """Made-up medians at 450x300; per-round ours/peer ratios 2.0, 1.5, 3.0 -> median 2.0
    (while the ratio of the medians would be 0.9 / 0.5 = 1.8)."""
    size = '450x300'
    return [
        record('ours', size, 0, 1.0, 700.0), record('peer', size, 0, 0.5, 900.0,
                                                    bound_s=0.25, conv_bound_s=0.1),
        record('book', size, 0, 3.0, 800.0),
        record('ours', size, 1, 0.9, 710.0), record('peer', size, 1, 0.6, 905.0,
                                                    bound_s=0.3, conv_bound_s=0.3),
        record('book', size, 1, 4.5, 810.0),
        record('ours', size, 2, 0.6, 705.0), record('peer', size, 2, 0.2, 910.0,
                                                    bound_s=0.2, conv_bound_s=0.2),
        record('book', size, 2, 3.0, 805.0),
    ]


# ------------------------------------------------------------------------- real workers

def test_worker_on_a_tiny_size_reports_seconds_and_memory():
    options = dict(threads=1, warmup=1, iters=2, env={}, timeout=300)
    result = bench.measure('ours', (64, 48), 0, options)
    assert result['ok'], result.get('error')
    assert result['kind'] == 'ours' and result['size'] == '64x48'
    assert len(result['seconds']) == 3
    assert all(s > 0 for s in result['seconds'])
    assert result['median_s'] == pytest.approx(statistics.median(result['seconds'][1:]))
    assert result['threads'] == 1
    assert 'random' in result['weights']
    # a Python process with MXNet and VGG-19's convolutions loaded, well under a few GB
    assert 100 < result['peak_mb'] < 4000
    assert 100 < result['process_peak_mb'] < 4000
    # the parent's polled VmHWM cannot exceed the worker's own, read at its end (1 MiB for
    # what printing the result may add)
    assert result['process_peak_mb'] <= result['peak_mb'] + 1
    assert result['cpu_s'] > 0 and result['wall_s'] > 0
    assert result['final_total_loss'] == pytest.approx(result['final_total_loss'])  # not NaN


def test_the_books_step_computes_our_loss_without_our_package():
    """The baseline measures the same computation: same random weights, same losses, same
    Adam steps -> the same total loss after three iterations."""
    seconds, book_total, description = workers.book_step_times(64, 48, 1, 2)
    assert len(seconds) == 3 and all(s > 0 for s in seconds)
    ours_seconds, ours_total, _ = workers.ours_step_times(64, 48, 1, 2)
    assert len(ours_seconds) == 3
    assert book_total == pytest.approx(ours_total, rel=1e-4)
    assert 'same values as ours' in description


def test_the_books_network_has_our_random_weights():
    import mxnet as mx
    from styletransfer.vgg import weights
    net = workers.book_network(mx.cpu())
    net(mx.nd.zeros((1, 3, 32, 32)))       # Gluon initialises on the first call
    ours = weights.load('random', 28, workers.SEED)
    assert sorted(ours.convs) == [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28]
    for index, (weight, bias) in ours.convs.items():
        assert (net[index].weight.data().asnumpy() == weight.asnumpy()).all(), index
        assert (net[index].bias.data().asnumpy() == bias.asnumpy()).all(), index


def test_the_books_step_loads_nothing_of_our_package():
    code = ('import sys\nfrom benchmarks import workers\nworkers.book_step_times(64, 48, 0, 1)\n'
            'print(sorted(m for m in sys.modules if m.startswith("styletransfer")))')
    done = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "['styletransfer']"   # the lazy top only


def test_a_schedule_run_traces_every_iteration(monkeypatch):
    monkeypatch.setattr(workers, 'FAST_PRESET',
                        dict(optimizer='lbfgs', stages=('64x48:3:100', '80x60:2:100')))
    run = workers.schedule_run('fast')
    assert run['schedule'] == 'fast' and run['stages'] == 2
    assert [row[:2] for row in run['trace']] == [[1, 0], [1, 1], [1, 2], [2, 0], [2, 1]]
    elapsed = [row[3] for row in run['trace']]
    assert elapsed == sorted(elapsed) and 0 < elapsed[0] and elapsed[-1] <= run['wall_s']
    assert all(row[2] > 0 for row in run['trace'])
    assert 'random' in run['weights']


def test_the_fast_schedule_is_trains_preset():
    from styletransfer.cli import train
    args, _ = train.parse(['--preset', 'fast'])
    fields = {f: v for (o, f), v in train.given(args).items() if o == 'settings'}
    assert st.Settings(**workers.FAST_PRESET) == st.Settings(**fields)


def test_the_peer_runs_through_its_wrapper(tmp_path):
    """A stand-in peer (no torch here): run as __main__ with its arguments and its own folder on
    sys.path; the wrapper adds its VmHWM as it exits."""
    (tmp_path / 'helper.py').write_text('SGEMM = 120.5\n')
    (tmp_path / 'peer.py').write_text(
        'import sys\nfrom helper import SGEMM\n'
        'def main():\n'
        '    size, iters = sys.argv[sys.argv.index("--size") + 1], sys.argv[sys.argv.index('
        '"--iters") + 1]\n'
        '    ballast = bytearray(50 * 1024 * 1024)\n'
        '    print("size %s threads 1 torch 0.0" % size)\n'
        '    print("peer s/iter (median of %s) 0.4321" % iters)\n'
        '    print("sgemm GFLOP/s here %s -> bound s/iter 0.3884" % SGEMM)\n'
        'if __name__ == "__main__":\n    main()\n')
    options = dict(threads=1, iters=4, env={}, timeout=60, peer=sys.executable,
                   peer_script=str(tmp_path / 'peer.py'))
    result = bench.measure('peer', (90, 60), 0, options)
    assert result['ok'], result.get('error')
    assert (result['width'], result['height'], result['iters']) == (90, 60, 4)
    assert result['median_s'] == 0.4321 and result['sgemm_gflops'] == 120.5
    assert 50 < result['peak_mb'] < 1000          # the 50 MiB it held, plus Python


# ---------------------------------------------------------------------------- arithmetic

def test_medians_and_per_round_ratios():
    s = summary.summarise_size(three_rounds(), '450x300')
    assert s['megapixels'] == pytest.approx(0.135)
    assert s['ours']['rounds_s'] == [1.0, 0.9, 0.6]
    assert s['ours']['median_s'] == pytest.approx(0.9)
    assert s['peer']['median_s'] == pytest.approx(0.5)
    assert s['book']['median_s'] == pytest.approx(3.0)
    ratios = s['ratios']
    assert ratios['ours_over_peer'] == pytest.approx(2.0)          # of 2.0, 1.5, 3.0
    assert ratios['book_over_ours'] == pytest.approx(5.0)          # of 3.0, 5.0, 5.0
    assert ratios['ours_over_sgemm_bound'] == pytest.approx(3.0)   # of 4.0, 3.0, 3.0
    assert ratios['ours_over_conv_bound'] == pytest.approx(3.0)    # of 10.0, 3.0, 3.0
    assert s['peer']['bound_s'] == pytest.approx(0.25)
    assert s['ours']['peak_mb'] == 710.0                           # a peak is the largest
    assert s['ours']['s_per_mp'] == pytest.approx(0.9 / 0.135)
    assert s['ours']['best_s'] == pytest.approx(0.6)
    assert s['ours']['cpu_per_wall'] == pytest.approx(1.5)


def test_a_failed_round_drops_out_of_the_ratios():
    records = three_rounds()
    records[3] = dict(kind='ours', size='450x300', round=1, ok=False, error='killed')
    s = summary.summarise_size(records, '450x300')
    assert s['ours']['rounds_s'] == [1.0, 0.6]
    assert s['ratios']['ours_over_peer'] == pytest.approx(2.5)  # of 2.0 and 3.0


def test_a_kind_not_run_is_none_everywhere():
    records = [r for r in three_rounds() if r['kind'] == 'ours']
    s = summary.summarise_size(records, '450x300')
    assert s['peer'] is None and s['book'] is None
    assert set(s['ratios'].values()) == {None}


def test_conv_flops_match_the_peers_count():
    # peer_torch.conv_gflops gives these forward GFLOP (checked with its own function)
    assert summary.conv_gflop_step(225, 150) / 2 == pytest.approx(23.793797376)
    assert summary.conv_gflop_step(1200, 800) / 2 == pytest.approx(693.41184)
    # by hand at 64x48: conv1_1 alone is 2 * 64 * 48 * 3 * 64 * 9 FLOP
    assert summary.conv_gflop_step(64, 48, deepest=0) / 2 == \
        pytest.approx(2 * 64 * 48 * 3 * 64 * 9 / 1e9)


def test_conv_flops_table_is_the_packages_vgg19():
    """summary counts from its own table; it must be the network our package runs."""
    from styletransfer.vgg import layers
    assert summary.BOOK_DEEPEST == st.Network().deepest

    def from_package(width, height, deepest):
        total = 0.0
        for name, index, shape in layers.TABLE:
            if index > deepest:
                break
            if name.startswith('pool'):
                width, height = width // 2, height // 2
            elif shape:
                total += 2.0 * width * height * shape[0] * shape[1] * 9
        return 2 * total / 1e9
    for deepest in (0, 2, 5, 10, 19, 25, 28, 34):
        assert summary.conv_gflop_step(450, 300, deepest) == \
            pytest.approx(from_package(450, 300, deepest)), deepest


def test_linearity_is_against_450x300():
    records = three_rounds()
    # s/MP at 900x600 = 3.78 / 0.54 = 7.0, at 450x300 = 0.9 / 0.135 = 6.667 -> 1.05
    records += [record('ours', '900x600', n, s) for n, s in enumerate((3.6, 3.78, 4.0))]
    records += [record('ours', '225x150', 0, 0.5)]
    doc = summary.assemble({}, {'sizes': []}, records)
    lin = doc['linearity']
    assert (lin['reference'], lin['largest']) == ('450x300', '900x600')
    assert lin['ratio'] == pytest.approx(1.05)
    assert lin['within']
    assert lin['relative']['450x300'] == pytest.approx(1.0)


def test_linearity_is_not_judged_without_a_larger_size():
    records = three_rounds() + [record('ours', '225x150', 0, 0.5)]
    doc = summary.assemble({}, {'sizes': []}, records)
    assert doc['linearity']['ratio'] is None and doc['linearity']['within'] is None
    assert 'not judged' in summary.format_report(doc)


def test_report_shows_the_numbers():
    doc = summary.assemble({}, {'sizes': []}, three_rounds())
    text = summary.format_report(doc)
    row = next(line for line in text.splitlines() if line.startswith('450x300'))
    for cell in ('0.9000', '3.0000', '5.00x', '0.5000', '2.00x', '0.2500', '3.00x', '0.135'):
        assert cell in row.split(), cell
    memory = [line for line in text.splitlines() if line.startswith('450x300')][1]
    assert memory.split()[-3:] == ['710', '810', '910']     # MB ours, book, peer
    json.dumps(doc)   # everything in it can be written


def test_peer_parser_reads_every_number():
    found = bench.parse_peer_output(PEER_SAMPLE)
    assert found == dict(width=225, height=150, threads=2, torch='2.13.0+cpu', iters=5,
                         median_s=0.4321, forward_gflop=23.8, step_gflop=47.6,
                         sgemm_gflops=120.5, bound_s=0.3884, conv_rate_gflops=310.2,
                         conv_bound_s=0.1509)
    wrapped = bench.parse_peer_output(PEER_SAMPLE + 'peak resident memory (VmHWM) kB 921600\n')
    assert wrapped['peak_mb'] == 900.0 and 'peak_kib' not in wrapped


def test_peer_parser_refuses_output_without_a_step_time():
    with pytest.raises(ValueError):
        bench.parse_peer_output('Traceback (most recent call last):\n...')


def test_rounds_rotate_the_order():
    kinds = ['ours', 'peer', 'book']
    assert [bench.round_order(kinds, n)[0] for n in range(4)] == \
        ['ours', 'peer', 'book', 'ours']


@pytest.mark.parametrize('argv', [['--sizes', '10x10'], ['--sizes', 'big'], ['--iters', '0'],
                                  ['--env', 'NOEQUALS'], ['--peer', 'python',
                                                          '--peer-script', '/nonexistent.py'],
                                  ['--json', '/nonexistent/folder/b.json']])
def test_bad_options_exit_2(argv, capsys):
    assert bench.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert 'error' in err and len(err.splitlines()) == 1


def test_time_to_book_loss_summary():
    book = dict(wall_s=600.0, stages=2, weights='random (seed 0)',
                trace=[[1, 0, 50.0, 1.0], [2, 0, 20.0, 300.0], [2, 299, 10.0, 600.0]])
    fast = dict(wall_s=150.0, stages=2, weights='random (seed 0)',
                trace=[[1, 0, 50.0, 1.0], [1, 1, 9.0, 20.0],    # stage 1 below 10: not counted
                       [2, 0, 12.0, 60.0], [2, 1, 10.09, 90.0], [2, 2, 9.5, 150.0]])
    r = summary.summarise_time_to_book_loss(book, fast)
    assert r['book_final_total'] == 10.0 and r['fast_final_total'] == 9.5
    assert r['fast_seconds_to_book_loss'] == 90.0          # 10.09 is within 1% of 10
    assert r['ratio_to_book_wall'] == 0.15
    assert r['fast_iterations'] == [2, 3]
    never = dict(fast, trace=[[2, 0, 12.0, 60.0]])
    assert summary.summarise_time_to_book_loss(book, never)['fast_seconds_to_book_loss'] is None
    text = summary.format_time_to_book_loss(r)
    assert '150.0 s, final total loss 9.5 (-5.00%)' in text
    assert 'within 1% of it after 90.0 s = 0.15 of the book run\'s wall time' in text


def test_bf16_drift_summary():
    book = dict(wall_s=400.0, trace=[[1, 0, 10.0, 1], [1, 1, 8.0, 2], [2, 0, 4.0, 3]])
    bf16 = dict(wall_s=250.0, trace=[[1, 0, 10.1, 1], [1, 1, 7.6, 2], [2, 0, 4.02, 3]])
    r = summary.summarise_bf16_drift(book, bf16)
    assert r['speedup'] == 1.6 and r['iterations'] == 3 and r['final_total'] == 4.02
    assert abs(r['max_rel_total'] - 0.05) < 1e-12 and abs(r['final_rel_total'] - 0.005) < 1e-12


def test_busy_processes_spin_during_the_block_and_end_with_it():
    with bench.busy_processes(2) as spinning:
        assert len(spinning) == 2 and all(p.poll() is None for p in spinning)
    assert all(p.poll() is not None for p in spinning)
    with bench.busy_processes(0) as none:
        assert none == []


# ----------------------------------------------------------------------- the CPU class

@pytest.mark.parametrize('flags, bfloat16, says', [
    (ZEN4_FLAGS, True, 'AMD EPYC 9R14 (AVX-512, AVX-512 BF16)'),
    (AVX2_FLAGS, False, 'AMD EPYC 9R14 (AVX2 only, no AVX-512: bfloat16 unavailable)'),
    (AVX2_FLAGS | {'avx512f'}, True,
     'AMD EPYC 9R14 (AVX-512, no AVX-512 BF16: bfloat16 without its own instructions)'),
    (AVX2_FLAGS | {'avx512f'}, False,
     'AMD EPYC 9R14 (AVX-512, no AVX-512 BF16: bfloat16 unavailable)'),
    (set(), False, 'AMD EPYC 9R14 (instruction sets unknown (no CPU flags to read))'),
])
def test_cpu_class_names_the_instruction_sets(flags, bfloat16, says):
    cpu = summary.cpu_class('AMD EPYC 9R14', flags, bfloat16)
    assert cpu['text'] == says
    assert cpu['avx512'] == ('avx512f' in flags) and cpu['bfloat16'] == bfloat16


def fake_measurements(calls):
    """A stand-in for bench.run_measured: what each worker would print, made up."""
    def run_measured(command, env, timeout):
        calls.append(command)
        kind = command[3]
        if kind == 'info':
            out = dict(mxnet='1.9.1', features=['MKLDNN'])
        elif kind == 'schedule':
            schedule = command[command.index('--schedule') + 1]
            trace = {'book': [[1, 0, 20.0, 1.0], [2, 0, 10.0, 8.0]],
                     'fast': [[1, 0, 20.0, 1.0], [2, 0, 10.05, 2.0], [2, 1, 9.9, 3.0]],
                     'book-bf16': [[1, 0, 20.0, 1.0], [2, 0, 10.01, 5.0]]}[schedule]
            out = dict(schedule=schedule, stages=2, trace=trace, wall_s=trace[-1][3],
                       weights='random (seed 0)')
        else:
            median = {'ours': 0.5, 'book': 1.0, 'bf16': 0.25}[kind]
            out = dict(kind=kind, median_s=median, seconds=[median] * 3, peak_mb=600.0,
                       final_total_loss=1.0, weights='random (seed 0)')
        return dict(returncode=0, timed_out=False, stdout=json.dumps(out) + '\n', stderr='',
                    process_peak_mb=600.0, wall_s=2.0, cpu_s=3.0)
    return run_measured


ALL_OPTIONS = ['--sizes', '225x150', '--repeats', '1', '--book', '--bf16',
               '--time-to-book-loss', '--threads', '1']


def test_without_bfloat16_the_bf16_parts_are_left_out_with_one_line(tmp_path, monkeypatch,
                                                                   capsys):
    monkeypatch.setattr(device, 'cpu_flags', lambda: set(AVX2_FLAGS))
    monkeypatch.setattr(device, 'bfloat16_supported', lambda: False)
    calls = []
    monkeypatch.setattr(bench, 'run_measured', fake_measurements(calls))
    out = tmp_path / 'b.json'
    assert bench.main(ALL_OPTIONS + ['--json', str(out)]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].startswith('CPU      ') and \
        '(AVX2 only, no AVX-512: bfloat16 unavailable)' in text.splitlines()[0]
    left = [line for line in text.splitlines() if line.startswith('left out')]
    assert left == ['left out --bf16 and the bfloat16 run of --time-to-book-loss: bfloat16 '
                    'cannot run on this CPU: oneDNN has no bfloat16 kernels without AVX-512 '
                    '(%s (AVX2 only, no AVX-512: bfloat16 unavailable))' % bench.cpu_model()]
    assert 'on %s (AVX2 only' % bench.cpu_model() in text      # heads the tables
    assert 'book schedule with --dtype bfloat16: left out: bfloat16 cannot run' in text
    assert 'bf16 s/it' not in text
    kinds = [c[3] for c in calls]
    assert 'bf16' not in kinds and sorted(kinds) == ['book', 'info', 'ours', 'schedule',
                                                     'schedule']
    schedules = [c[c.index('--schedule') + 1] for c in calls if c[3] == 'schedule']
    assert schedules == ['book', 'fast']
    doc = json.loads(out.read_text())
    assert doc['machine']['cpu_class']['avx512'] is False
    assert doc['machine']['cpu_class']['bfloat16'] is False
    assert doc['settings']['kinds'] == ['ours', 'book']
    assert doc['settings']['left_out']['parts'] == ['--bf16',
                                                    'the bfloat16 run of --time-to-book-loss']
    assert doc['time_to_book_loss']['bfloat16'] is None
    assert doc['time_to_book_loss']['fast_seconds_to_book_loss'] == 2.0   # 10.05 within 1%


def test_with_bfloat16_every_part_runs_and_the_class_is_named(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(device, 'cpu_flags', lambda: set(ZEN4_FLAGS))
    monkeypatch.setattr(device, 'bfloat16_supported', lambda: True)
    calls = []
    monkeypatch.setattr(bench, 'run_measured', fake_measurements(calls))
    out = tmp_path / 'b.json'
    assert bench.main(ALL_OPTIONS + ['--json', str(out)]) == 0
    text = capsys.readouterr().out
    assert '(AVX-512, AVX-512 BF16), ' in text.splitlines()[0]
    assert 'left out' not in text
    row = next(line for line in text.splitlines() if line.startswith('225x150'))
    assert row.split()[2:5] == ['0.5000', '1.0000', '2.00x']      # ours, book, book/ours
    assert row.split()[-2:] == ['0.2500', '-']                      # bf16, no peer
    assert 'book schedule with --dtype bfloat16: 5.0 s (1.60x faster)' in text
    schedules = [c[c.index('--schedule') + 1] for c in calls if c[3] == 'schedule']
    assert schedules == ['book', 'fast', 'book-bf16']
    doc = json.loads(out.read_text())
    assert doc['machine']['cpu_class']['text'].endswith('(AVX-512, AVX-512 BF16)')
    assert doc['settings']['left_out'] is None
    assert doc['time_to_book_loss']['bfloat16']['max_rel_total'] == pytest.approx(0.001)
    assert doc['time_to_book_loss']['cpu'] == doc['machine']['cpu_class']['text']
