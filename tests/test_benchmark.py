"""The benchmark: one real worker on a tiny size, then its arithmetic and parsing on made-up
numbers. No assertion here is about speed."""
import json
import statistics

import pytest

from styletransfer.cli import benchmark

PEER_SAMPLE = """size 225x150 threads 2 torch 2.13.0+cpu
peer s/iter (median of 5) 0.4321
conv GFLOP forward 23.8, forward+input-grad 47.6
sgemm GFLOP/s here 120.5 -> bound s/iter 0.3884
3x3 conv GFLOP/s here 310.2 -> conv-rate bound s/iter 0.1509
"""


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


def test_worker_on_a_tiny_size_reports_seconds_and_memory():
    options = dict(threads=1, warmup=1, iters=2, env={}, timeout=300)
    result = benchmark.measure('ours', (64, 48), 0, options)
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
    assert result['cpu_s'] > 0 and result['wall_s'] > 0
    assert result['final_total_loss'] == pytest.approx(result['final_total_loss'])  # not NaN


def test_medians_and_per_round_ratios():
    summary = benchmark.summarise_size(three_rounds(), '450x300')
    assert summary['megapixels'] == pytest.approx(0.135)
    assert summary['ours']['rounds_s'] == [1.0, 0.9, 0.6]
    assert summary['ours']['median_s'] == pytest.approx(0.9)
    assert summary['peer']['median_s'] == pytest.approx(0.5)
    assert summary['book']['median_s'] == pytest.approx(3.0)
    ratios = summary['ratios']
    assert ratios['ours_over_peer'] == pytest.approx(2.0)          # of 2.0, 1.5, 3.0
    assert ratios['book_over_ours'] == pytest.approx(5.0)          # of 3.0, 5.0, 5.0
    assert ratios['ours_over_sgemm_bound'] == pytest.approx(3.0)   # of 4.0, 3.0, 3.0
    assert ratios['ours_over_conv_bound'] == pytest.approx(3.0)    # of 10.0, 3.0, 3.0
    assert summary['peer']['bound_s'] == pytest.approx(0.25)
    assert summary['ours']['peak_mb'] == 710.0                     # a peak is the largest
    assert summary['ours']['s_per_mp'] == pytest.approx(0.9 / 0.135)
    assert summary['ours']['best_s'] == pytest.approx(0.6)
    assert summary['ours']['cpu_per_wall'] == pytest.approx(1.5)


def test_a_failed_round_drops_out_of_the_ratios():
    records = three_rounds()
    records[3] = dict(kind='ours', size='450x300', round=1, ok=False, error='killed')
    summary = benchmark.summarise_size(records, '450x300')
    assert summary['ours']['rounds_s'] == [1.0, 0.6]
    assert summary['ratios']['ours_over_peer'] == pytest.approx(2.5)  # of 2.0 and 3.0


def test_a_kind_not_run_is_none_everywhere():
    records = [r for r in three_rounds() if r['kind'] == 'ours']
    summary = benchmark.summarise_size(records, '450x300')
    assert summary['peer'] is None and summary['book'] is None
    assert set(summary['ratios'].values()) == {None}


def test_conv_flops_match_the_peers_count():
    # peer_torch.conv_gflops gives these forward GFLOP (checked with its own function)
    assert benchmark.conv_gflop_step(225, 150) / 2 == pytest.approx(23.793797376)
    assert benchmark.conv_gflop_step(1200, 800) / 2 == pytest.approx(693.41184)
    # by hand at 64x48: conv1_1 alone is 2 * 64 * 48 * 3 * 64 * 9 FLOP
    assert benchmark.conv_gflop_step(64, 48, deepest=0) / 2 == \
        pytest.approx(2 * 64 * 48 * 3 * 64 * 9 / 1e9)


def test_linearity_is_against_450x300():
    records = three_rounds()
    # s/MP at 900x600 = 3.78 / 0.54 = 7.0, at 450x300 = 0.9 / 0.135 = 6.667 -> 1.05
    records += [record('ours', '900x600', n, s) for n, s in enumerate((3.6, 3.78, 4.0))]
    records += [record('ours', '225x150', 0, 0.5)]
    doc = benchmark.assemble({}, {'sizes': []}, records)
    lin = doc['linearity']
    assert (lin['reference'], lin['largest']) == ('450x300', '900x600')
    assert lin['ratio'] == pytest.approx(1.05)
    assert lin['within']
    assert lin['relative']['450x300'] == pytest.approx(1.0)


def test_linearity_is_not_judged_without_a_larger_size():
    records = three_rounds() + [record('ours', '225x150', 0, 0.5)]
    doc = benchmark.assemble({}, {'sizes': []}, records)
    assert doc['linearity']['ratio'] is None and doc['linearity']['within'] is None
    assert 'not judged' in benchmark.format_report(doc)


def test_report_shows_the_numbers():
    doc = benchmark.assemble({}, {'sizes': []}, three_rounds())
    text = benchmark.format_report(doc)
    row = next(line for line in text.splitlines() if line.startswith('450x300'))
    for cell in ('0.9000', '3.0000', '5.00x', '0.5000', '2.00x', '0.2500', '3.00x', '0.135'):
        assert cell in row.split(), cell
    json.dumps(doc)   # everything in it can be written


def test_peer_parser_reads_every_number():
    found = benchmark.parse_peer_output(PEER_SAMPLE)
    assert found == dict(width=225, height=150, threads=2, torch='2.13.0+cpu', iters=5,
                         median_s=0.4321, forward_gflop=23.8, step_gflop=47.6,
                         sgemm_gflops=120.5, bound_s=0.3884, conv_rate_gflops=310.2,
                         conv_bound_s=0.1509)


def test_peer_parser_refuses_output_without_a_step_time():
    with pytest.raises(ValueError):
        benchmark.parse_peer_output('Traceback (most recent call last):\n...')


def test_rounds_rotate_the_order():
    kinds = ['ours', 'peer', 'book']
    assert [benchmark.round_order(kinds, n)[0] for n in range(4)] == \
        ['ours', 'peer', 'book', 'ours']


@pytest.mark.parametrize('argv', [['--sizes', '10x10'], ['--sizes', 'big'], ['--iters', '0'],
                                  ['--env', 'NOEQUALS'], ['--peer', 'python',
                                                          '--peer-script', '/nonexistent.py']])
def test_bad_options_exit_2(argv, capsys):
    assert benchmark.main(argv) == 2
    assert 'error' in capsys.readouterr().err


def test_time_to_book_loss_summary():
    from styletransfer.cli.benchmark import summarise_time_to_book_loss
    book = dict(wall_s=600.0, stages=2, weights='random (seed 0)',
                trace=[[1, 0, 50.0, 1.0], [2, 0, 20.0, 300.0], [2, 299, 10.0, 600.0]])
    fast = dict(wall_s=150.0, stages=2, weights='random (seed 0)',
                trace=[[1, 0, 50.0, 1.0], [1, 1, 9.0, 20.0],    # stage 1 below 10: not counted
                       [2, 0, 12.0, 60.0], [2, 1, 10.09, 90.0], [2, 2, 9.5, 150.0]])
    r = summarise_time_to_book_loss(book, fast)
    assert r['book_final_total'] == 10.0 and r['fast_final_total'] == 9.5
    assert r['fast_seconds_to_book_loss'] == 90.0          # 10.09 is within 1% of 10
    assert r['ratio_to_book_wall'] == 0.15
    assert r['fast_iterations'] == [2, 3]
    never = dict(fast, trace=[[2, 0, 12.0, 60.0]])
    assert summarise_time_to_book_loss(book, never)['fast_seconds_to_book_loss'] is None


def test_bf16_drift_summary():
    from styletransfer.cli.benchmark import summarise_bf16_drift
    book = dict(wall_s=400.0, trace=[[1, 0, 10.0, 1], [1, 1, 8.0, 2], [2, 0, 4.0, 3]])
    bf16 = dict(wall_s=250.0, trace=[[1, 0, 10.1, 1], [1, 1, 7.6, 2], [2, 0, 4.02, 3]])
    r = summarise_bf16_drift(book, bf16)
    assert r['speedup'] == 1.6 and r['iterations'] == 3 and r['final_total'] == 4.02
    assert abs(r['max_rel_total'] - 0.05) < 1e-12 and abs(r['final_rel_total'] - 0.005) < 1e-12


def test_busy_processes_spin_during_the_block_and_end_with_it():
    with benchmark.busy_processes(2) as spinning:
        assert len(spinning) == 2 and all(p.poll() is None for p in spinning)
    assert all(p.poll() is not None for p in spinning)
    with benchmark.busy_processes(0) as none:
        assert none == []
