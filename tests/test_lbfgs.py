"""L-BFGS, the stop rule and the fast preset."""
import numpy as np
from mxnet import nd
from PIL import Image

from styletransfer.cli import train
from styletransfer.gatys.lbfgs import LBFGS
from styletransfer.gatys.optimise import Plateau


def quadratic(scales, centre):
    """f(x) = sum(scales * (x - centre)^2): badly conditioned when the scales differ."""
    def evaluate(x):
        d = x - centre
        return float(nd.sum(scales * d * d).asscalar()), 2 * scales * d, None
    return evaluate


def test_lbfgs_solves_an_ill_conditioned_quadratic():
    rng = np.random.RandomState(0)
    scales = nd.array(10 ** rng.uniform(-1, 1, 50))      # condition number up to 100
    centre = nd.array(rng.normal(size=50))
    evaluate = quadratic(scales, centre)
    solver = LBFGS(nd.zeros(50), evaluate, history=10)
    for _ in range(60):
        solver.step()
    assert np.abs((solver.x - centre).asnumpy()).max() < 1e-4
    assert solver.evaluations < 80
    # Gradient descent at its best fixed step is still 1e-3 away after those evaluations.
    x, step = nd.zeros(50), 1 / (2 * scales.max().asscalar())
    for _ in range(solver.evaluations):
        x = x - step * evaluate(x)[1]
    assert np.abs((x - centre).asnumpy()).max() > 1e-3


def test_lbfgs_finds_the_rosenbrock_minimum():
    def rosenbrock(v):
        a, b = v[0], v[1]
        f = (1 - a) ** 2 + 100 * (b - a * a) ** 2
        g = nd.concat(-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a), dim=0)
        return float(f.asscalar()), g, None
    solver = LBFGS(nd.array([-1.2, 1.0]), rosenbrock, history=10)
    for _ in range(100):
        solver.step()
    assert np.allclose(solver.x.asnumpy(), [1.0, 1.0], atol=1e-3)


def test_lbfgs_keeps_the_bounds():
    centre = nd.array([2.0, -3.0, 0.5])
    solver = LBFGS(nd.zeros(3), quadratic(nd.ones(3), centre),
                   lower=nd.array([-1.0, -1.0, -1.0]), upper=nd.array([1.0, 1.0, 1.0]))
    for _ in range(30):
        if not solver.step():
            break
    assert np.allclose(solver.x.asnumpy(), [1.0, -1.0, 0.5], atol=1e-4)


def test_plateau_stops_only_after_a_flat_window():
    rule = Plateau(rtol=0.01, window=3)
    totals = [100, 90, 80, 79.9, 79.8, 79.7, 79.6]
    flags = [rule.reached(t) for t in totals]
    # Index 4: 79.8 against 90 three iterations before, an 11% fall; index 5: 79.7 against 80,
    # 0.4%; index 6: 79.6 against 79.9.
    assert flags == [False] * 5 + [True, True]
    never = Plateau(rtol=0.0, window=1)
    assert not any(never.reached(t) for t in [5, 5, 5, 5])


def _images(tmp_path):
    y, x = np.mgrid[0:32, 0:48]
    Image.fromarray(np.stack([x * 5, y * 7, (x ^ y) * 4], -1).astype(np.uint8)).save(
        tmp_path / 'c.png')
    Image.fromarray(np.random.RandomState(1).randint(0, 256, (40, 40, 3)).astype(np.uint8)).save(
        tmp_path / 's.png')
    return [str(tmp_path / 'c.png'), str(tmp_path / 's.png')]


def _trace_totals(path):
    import json
    with open(path) as f:
        records = [json.loads(line) for line in f][1:]
    return records


def test_lbfgs_run_beats_adam_in_the_same_iterations(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    images = _images(tmp_path)
    common = [*images, '--weights', 'random', '--ctx', 'cpu:1', '--style-weight', '1e6',
              '--log-every', '5', '--stage', '48x32:41:1000']
    assert train.main([*common, '-o', 'adam.png', '--trace', 'adam.jsonl']) == 0
    assert train.main([*common, '-o', 'lbfgs.png', '--trace', 'lbfgs.jsonl',
                       '--optimizer', 'lbfgs']) == 0
    adam, lbfgs = _trace_totals('adam.jsonl'), _trace_totals('lbfgs.jsonl')
    assert [r['epoch'] for r in lbfgs] == [5, 10, 15, 20, 25, 30, 35, 40]
    totals = [r['total'] for r in lbfgs]
    assert all(b <= a for a, b in zip(totals, totals[1:]))     # line search: never worse
    assert lbfgs[-1]['total'] < 0.9 * adam[-1]['total']


def test_stop_rtol_ends_a_stage_early(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = [*_images(tmp_path), '--weights', 'random', '--ctx', 'cpu:1', '--log-every', '1',
            '--optimizer', 'lbfgs', '--stop-rtol', '0.05', '--stop-window', '3',
            '--stage', '48x32:500:1000', '--trace', 't.jsonl']
    assert train.main(args) == 0
    epochs = [r['epoch'] for r in _trace_totals('t.jsonl')]
    assert 3 < epochs[-1] < 499
    totals = [r['total'] for r in _trace_totals('t.jsonl')]
    last, before = totals[-1], totals[-4]
    assert before - last <= 0.05 * before


def test_fast_preset_expands_and_explicit_options_win():
    args = train.parse(['--preset', 'fast'])[0]
    assert args.optimizer == 'lbfgs' and args.stop_rtol > 0
    assert [s.split(':')[0] for s in args.stage] == ['225x150', '450x300']
    mine = train.parse(['--preset', 'fast', '--stage', '64x48:10:5', '--stop-rtol', '0'])[0]
    assert mine.stage == ['64x48:10:5'] and mine.stop_rtol == 0 and mine.optimizer == 'lbfgs'
    assert train.parse([])[0].optimizer is None     # the library's default: adam
