"""benchmark.py: seconds per optimisation step of ours, of the book's plain step, and of a PyTorch
peer, image size by image size, each measured in its own process.

Every measurement is a subprocess, so the peak resident memory reported is that size's alone and
OMP_NUM_THREADS is set before MXNet is imported. With --peer, ours, the peer (and the book's step
with --book) alternate per size over --repeats rounds, so that the machine's noise falls on all of
them alike; ratios are medians of per-round ratios.

The VGG-19 weights are random (seeded): the time of a step does not depend on weight values, and
the benchmark needs no download.

Exit status: 0 when every measurement ran, 1 when any failed, 2 for bad options.
"""
import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

from styletransfer.vgg import layers
from styletransfer.cli.common import parse_args, refuse
from styletransfer.files import write_text

PROG = 'benchmark.py'
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_PEER_SCRIPT = os.path.join(os.path.dirname(REPO), 'shared', 'bench', 'peer_torch.py')
DEFAULT_SIZES = '225x150,450x300,900x600,1200x800'
DEFAULT_WARMUP, DEFAULT_ITERS, DEFAULT_REPEATS = 2, 5, 3
DEFAULT_TIMEOUT = 1800              # seconds for one measurement: a 1200x800 book row needs
                                    # a few minutes, a hung engine should not cost hours
# The issue asks for cost linear in pixels: s/MP at the largest size within 15% of s/MP here.
REFERENCE_SIZE = (450, 300)
LINEAR_TOLERANCE = 0.15
KINDS = ('ours', 'peer', 'book', 'bf16')
RESULT_PREFIX = '{'                 # the worker's result is its last stdout line that is JSON
WEIGHTS_NOTE = ('VGG-19 weights are random (seed 0): the time of a step does not depend on the '
                'weight values')
# Environment variables that steer threads or MXNet's engine: recorded with every run.
THREAD_ENV_PREFIXES = ('OMP_', 'KMP_', 'GOMP_', 'MXNET_', 'MKL', 'DNNL_', 'OPENBLAS_')


class BadInput(Exception):
    pass


# ------------------------------------------------------------------------------- arguments

def parse_size(text):
    """'450x300' -> (450, 300)."""
    try:
        width, height = (int(v) for v in text.strip().lower().split('x'))
    except ValueError:
        raise BadInput('size %r: expected WIDTHxHEIGHT, e.g. 450x300' % text) from None
    smallest = layers.min_side(layers.BOOK_CONTENT_LAYERS + layers.BOOK_STYLE_LAYERS)
    if min(width, height) < smallest:
        raise BadInput('size %s: each side needs at least %d pixels' % (text, smallest))
    return width, height


def size_name(size):
    return '%dx%d' % tuple(size)


def available_cores():
    return len(os.sched_getaffinity(0))


def build_parser():
    p = argparse.ArgumentParser(
        prog=PROG,
        description='Time one optimisation step (seconds per iteration) of our style transfer '
                    'per image size, each size in its own process, optionally side by side with '
                    'the book\'s plain step (--book) and a PyTorch peer (--peer). Weights are '
                    'random: speed does not depend on them.')
    p.add_argument('--sizes', default=DEFAULT_SIZES, metavar='WxH,...',
                   help='image sizes (default: %(default)s)')
    p.add_argument('--threads', type=int, metavar='N',
                   help='OMP_NUM_THREADS for MXNet and torch threads for the peer '
                        '(default: the cores available, here %d)' % available_cores())
    p.add_argument('--warmup', type=int, default=DEFAULT_WARMUP, metavar='N',
                   help='untimed iterations first (default: %(default)s)')
    p.add_argument('--iters', type=int, default=DEFAULT_ITERS, metavar='N',
                   help='timed iterations, of which the median counts (default: %(default)s)')
    p.add_argument('--repeats', type=int, default=DEFAULT_REPEATS, metavar='N',
                   help='rounds per size, each a fresh process per kind (default: %(default)s)')
    p.add_argument('--book', action='store_true',
                   help='also time the book\'s plain step (not hybridised, weights not frozen)')
    p.add_argument('--peer', metavar='PYTHON',
                   help='a Python with torch, to run the PyTorch peer with')
    p.add_argument('--peer-script', default=DEFAULT_PEER_SCRIPT, metavar='PATH',
                   help='the peer (default: <repo>/../shared/bench/peer_torch.py)')
    p.add_argument('--env', action='append', default=[], metavar='KEY=VALUE',
                   help='extra environment for our and the book\'s processes (repeatable), '
                        'e.g. MXNET_ENGINE_TYPE=NaiveEngine')
    p.add_argument('--busy', type=int, default=0, metavar='N',
                   help='keep N busy processes running beside every measurement, as other '
                        'work on a shared machine would (default: 0)')
    p.add_argument('--json', default='benchmark.json', metavar='PATH',
                   help='write everything measured here (default: %(default)s)')
    p.add_argument('--timeout', type=float, default=DEFAULT_TIMEOUT, metavar='SECONDS',
                   help='give up on one measurement after this long (default: %(default)s)')
    p.add_argument('--bf16', action='store_true',
                   help='also time our step with the network in bfloat16 (--dtype bfloat16)')
    p.add_argument('--time-to-book-loss', action='store_true',
                   help='also run the book\'s whole schedule, --preset fast and the book\'s '
                        'schedule in bfloat16 on the bundled images (random weights), each in '
                        'its own process; report the time the preset takes to reach the book '
                        'run\'s final total loss (within 1%%) and how far bfloat16 moves the '
                        'losses; --sizes "" runs only this')
    # Internal: the parent starts itself with this to measure one kind at one size.
    p.add_argument('--worker', choices=('ours', 'book', 'bf16', 'info', 'schedule'),
                   help=argparse.SUPPRESS)
    p.add_argument('--schedule', choices=('book', 'fast', 'book-bf16'), help=argparse.SUPPRESS)
    return p


def main(argv=None):
    args, code = parse_args(build_parser(), argv)
    if args is None:
        return code
    if args.worker:
        return worker_main(args)
    try:
        options = _check(args)
    except BadInput as error:
        return refuse(PROG, error)
    return run(options)


def _check(args):
    sizes = [parse_size(s) for s in args.sizes.split(',') if s.strip()]
    if not sizes and not args.time_to_book_loss:
        raise BadInput('--sizes: no sizes given')
    threads = available_cores() if args.threads is None else args.threads
    for name, value, least in (('--threads', threads, 1), ('--warmup', args.warmup, 0),
                               ('--iters', args.iters, 1), ('--repeats', args.repeats, 1),
                               ('--busy', args.busy, 0)):
        if value < least:
            raise BadInput('%s must be at least %d, not %d' % (name, least, value))
    if not args.timeout > 0:
        raise BadInput('--timeout must be positive')
    env = {}
    for item in args.env:
        key, sep, value = item.partition('=')
        if not sep or not key:
            raise BadInput('--env %r: expected KEY=VALUE' % item)
        env[key] = value
    if args.peer:
        if not os.path.isfile(args.peer_script):
            raise BadInput('peer script %s not found (--peer-script)' % args.peer_script)
    folder = os.path.dirname(os.path.abspath(args.json))
    if not os.path.isdir(folder):   # found out now, not after an hour of measuring
        raise BadInput('--json %s: folder %s does not exist' % (args.json, folder))
    kinds = (['ours'] + (['peer'] if args.peer else []) + (['book'] if args.book else [])
             + (['bf16'] if args.bf16 else []))
    return dict(sizes=sizes, threads=threads, warmup=args.warmup, iters=args.iters,
                repeats=args.repeats, kinds=kinds, peer=args.peer,
                peer_script=os.path.abspath(args.peer_script) if args.peer else None,
                env=env, json=args.json, timeout=args.timeout,
                time_to_book_loss=args.time_to_book_loss, busy=args.busy)


# --------------------------------------------------------------------------- the parent

def run(options):
    machine = machine_info(options['threads'], _mxnet_info(options))
    print(format_context(machine, options), flush=True)
    records = []
    doc = None
    with busy_processes(options['busy']):
        doc = _measure_all(options, machine, records) or assemble(machine, options, records)
        if options['time_to_book_loss']:
            doc['time_to_book_loss'] = time_to_book_loss(options)
            write_text(options['json'], json.dumps(doc, indent=2) + '\n')
    if records:
        print(format_report(doc))
    if options['time_to_book_loss']:
        print(format_time_to_book_loss(doc['time_to_book_loss']))
    print('\nwrote %s' % options['json'])
    failed = [r for r in records if not r['ok']]
    for r in failed:
        print('%s: %s at %s, round %d failed: %s' % (PROG, r['kind'], r['size'], r['round'] + 1,
                                                     r['error']), file=sys.stderr)
    return 1 if failed else 0


def _measure_all(options, machine, records):
    doc = None
    for size in options['sizes']:
        for number in range(options['repeats']):
            for kind in round_order(options['kinds'], number):
                record = measure(kind, size, number, options)
                records.append(record)
                print(_progress_line(record, options['repeats']), file=sys.stderr, flush=True)
                # Written after every measurement, so a run cut short keeps its numbers.
                doc = assemble(machine, options, records)
                write_text(options['json'], json.dumps(doc, indent=2) + '\n')
    return doc


@contextlib.contextmanager
def busy_processes(count):
    """`count` processes that only spin, for as long as the block runs (it gets them)."""
    spinning = [subprocess.Popen([sys.executable, '-c', 'while True: pass'])
                for _ in range(count)]
    try:
        yield spinning
    finally:
        for process in spinning:
            process.kill()
            process.wait()


def round_order(kinds, number):
    """Kinds in the order of round `number`: rotated each round, so no kind always runs first
    (right after another one's process has heated or freed the caches)."""
    k = number % len(kinds)
    return list(kinds[k:]) + list(kinds[:k])


def _progress_line(record, repeats):
    head = '[%s round %d/%d] %-4s' % (record['size'], record['round'] + 1, repeats,
                                      record['kind'])
    if not record['ok']:
        return '%s failed: %s' % (head, record['error'])
    return '%s %.4f s/iter, peak %.0f MB' % (head, record['median_s'], record['peak_mb'])


def worker_env(options, kind):
    env = dict(os.environ)
    env['OMP_NUM_THREADS'] = str(options['threads'])
    if kind != 'peer':
        env.update(options['env'])
        env['PYTHONPATH'] = os.pathsep.join([REPO] + [p for p in [env.get('PYTHONPATH')] if p])
    return env


def worker_command(kind, size, options):
    if kind == 'peer':
        return [options['peer'], options['peer_script'], '--size', size_name(size),
                '--iters', str(options['iters']), '--threads', str(options['threads'])]
    return [sys.executable, '-m', 'styletransfer.cli.benchmark', '--worker', kind,
            '--sizes', size_name(size), '--warmup', str(options['warmup']),
            '--iters', str(options['iters']), '--threads', str(options['threads'])]


def measure(kind, size, number, options):
    """One measurement in a fresh process -> a record (dict), 'ok' False when it failed."""
    # The load before the start shows which rounds other work on the machine disturbed.
    record = dict(kind=kind, size=size_name(size), round=number, ok=False,
                  loadavg_before=os.getloadavg()[0])
    done = run_measured(worker_command(kind, size, options), worker_env(options, kind),
                        options['timeout'])
    # CPU seconds beside wall seconds: on a shared machine the gap shows time spent waiting.
    record.update(wall_s=done['wall_s'], cpu_s=done['cpu_s'], process_peak_mb=done['peak_mb'])
    if done['timed_out']:
        record['error'] = 'timed out after %g s' % options['timeout']
        return record
    if done['returncode'] != 0:
        record['error'] = 'exit status %d: %s' % (done['returncode'], _tail(done['stderr']))
        return record
    try:
        if kind == 'peer':
            result = parse_peer_output(done['stdout'])
            result['peak_mb'] = done['peak_mb']     # measured by the parent via wait4
            result['output'] = done['stdout']
        else:
            result = parse_worker_output(done['stdout'])
    except ValueError as e:
        record['error'] = '%s; stderr: %s' % (e, _tail(done['stderr']))
        return record
    record.update(result)
    record['ok'] = True
    return record


def _tail(text, lines=5):
    return ' | '.join(text.strip().splitlines()[-lines:]) or '(nothing on stderr)'


def run_measured(command, env, timeout):
    """Run `command`; return its output, exit status and its own peak resident memory.

    os.wait4 gives the resource usage of exactly this child, unlike RUSAGE_CHILDREN, which keeps
    the largest of all children waited for so far.
    """
    start = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                env=env)
        timed_out = False
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() - start > timeout:
                    timed_out = True
                    proc.kill()
                    pid, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.1)
        except BaseException:       # Ctrl-C: leave no orphan computing on
            proc.kill()
            os.wait4(proc.pid, 0)
            proc.returncode = -9
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return dict(returncode=proc.returncode, timed_out=timed_out,
                    stdout=out.read().decode('utf-8', 'replace'),
                    stderr=err.read().decode('utf-8', 'replace'),
                    peak_mb=_kib_to_mb(usage.ru_maxrss), wall_s=time.monotonic() - start,
                    cpu_s=usage.ru_utime + usage.ru_stime)


def _kib_to_mb(kib):
    return kib / 1024.0   # ru_maxrss is in KiB on Linux; "MB" here are MiB


def parse_worker_output(stdout):
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith(RESULT_PREFIX):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                break
    raise ValueError('no JSON result line in the worker\'s output')


_PEER_LINES = {
    'median': re.compile(r'^peer s/iter \(median of (?P<iters>\d+)\) (?P<median_s>\S+)$'),
    'sgemm': re.compile(r'^sgemm GFLOP/s here (?P<sgemm_gflops>\S+) -> bound s/iter '
                        r'(?P<bound_s>\S+)$'),
    'conv': re.compile(r'^3x3 conv GFLOP/s here (?P<conv_rate_gflops>\S+) -> conv-rate bound '
                       r's/iter (?P<conv_bound_s>\S+)$'),
    'size': re.compile(r'^size (?P<width>\d+)x(?P<height>\d+) threads (?P<threads>\d+) '
                       r'torch (?P<torch>\S+)$'),
    'flops': re.compile(r'^conv GFLOP forward (?P<forward_gflop>\S+), forward\+input-grad '
                        r'(?P<step_gflop>\S+)$'),
}
_PEER_TEXT_FIELDS = ('torch',)
_PEER_INT_FIELDS = ('iters', 'width', 'height', 'threads')


def parse_peer_output(text):
    """The numbers peer_torch.py prints -> dict; ValueError if its step time is missing."""
    found = {}
    for line in text.splitlines():
        for pattern in _PEER_LINES.values():
            match = pattern.match(line.strip())
            if match:
                for key, value in match.groupdict().items():
                    if key in _PEER_TEXT_FIELDS:
                        found[key] = value
                    elif key in _PEER_INT_FIELDS:
                        found[key] = int(value)
                    else:
                        found[key] = float(value)
    if 'median_s' not in found:
        raise ValueError('no "peer s/iter (median of N) X" line in the peer\'s output')
    return found


def _mxnet_info(options):
    done = run_measured([sys.executable, '-m', 'styletransfer.cli.benchmark', '--worker', 'info'],
                        worker_env(options, 'info'), 300)
    try:
        return parse_worker_output(done['stdout'])
    except ValueError:
        return {'mxnet': 'unknown (%s)' % _tail(done['stderr'], 1), 'features': []}


def machine_info(threads, mxnet):
    return dict(cpu=_cpu_model(), cores=os.cpu_count(), cores_available=available_cores(),
                threads=threads, mxnet=mxnet.get('mxnet'), features=mxnet.get('features', []),
                python=platform.python_version(), platform=platform.platform(),
                date=datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
                env={k: v for k, v in sorted(os.environ.items())
                     if k.startswith(THREAD_ENV_PREFIXES)})


def _cpu_model():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


# ---------------------------------------------------------------------- the arithmetic

def conv_gflop_step(width, height, deepest=max(layers.BOOK_STYLE_LAYERS)):
    """Convolution GFLOP of one step: the forward pass plus the input-gradient backward pass
    (2 FLOP per multiply-add), counted as the peer counts them."""
    total = 0.0
    for name, index, shape in layers.TABLE:
        if index > deepest:
            break
        if name.startswith('pool'):
            width, height = width // 2, height // 2
        elif shape:
            total += 2.0 * width * height * shape[0] * shape[1] * 9
    return 2 * total / 1e9


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _per_round(records, size, kind):
    return {r['round']: r for r in records if r['size'] == size and r['kind'] == kind and r['ok']}


def _round_ratios(top, bottom, top_key='median_s', bottom_key='median_s'):
    """top[key] / bottom[key] for each round both have."""
    return [top[n][top_key] / bottom[n][bottom_key] for n in sorted(top)
            if n in bottom and bottom[n].get(bottom_key)]


def summarise_size(records, size):
    """Medians over rounds and medians of per-round ratios for one size (a name 'WxH')."""
    width, height = parse_size(size)
    rounds = {kind: _per_round(records, size, kind) for kind in KINDS}
    summary = dict(size=size, megapixels=width * height / 1e6,
                   conv_gflop_step=conv_gflop_step(width, height))
    for kind, by_round in rounds.items():
        if not by_round:
            summary[kind] = None
            continue
        entry = dict(rounds_s=[by_round[n]['median_s'] for n in sorted(by_round)],
                     median_s=_median(r['median_s'] for r in by_round.values()),
                     best_s=min(r['median_s'] for r in by_round.values()),
                     peak_mb=max(r['peak_mb'] for r in by_round.values()),
                     cpu_per_wall=_median(r['cpu_s'] / r['wall_s'] for r in by_round.values()
                                          if r.get('wall_s') and 'cpu_s' in r))
        if kind == 'peer':
            for key in ('sgemm_gflops', 'bound_s', 'conv_rate_gflops', 'conv_bound_s'):
                entry[key] = _median(r.get(key) for r in by_round.values())
        entry['s_per_mp'] = entry['median_s'] / summary['megapixels']
        summary[kind] = entry
    ours, peer, book = rounds['ours'], rounds['peer'], rounds['book']
    summary['ratios'] = dict(
        ours_over_peer=_median(_round_ratios(ours, peer)),
        bf16_over_peer=_median(_round_ratios(rounds['bf16'], peer)),
        book_over_ours=_median(_round_ratios(book, ours)),
        ours_over_sgemm_bound=_median(_round_ratios(ours, peer, bottom_key='bound_s')),
        ours_over_conv_bound=_median(_round_ratios(ours, peer, bottom_key='conv_bound_s')))
    if summary['ours']:
        summary['ours']['gflops'] = summary['conv_gflop_step'] / summary['ours']['median_s']
    return summary


def linearity(sizes):
    """s/MP of ours at the largest size over s/MP at 450x300 (or the smallest size if 450x300
    was not measured), and whether it is within LINEAR_TOLERANCE; ratio and verdict are None
    when the largest size is the reference itself."""
    measured = [s for s in sizes if s['ours']]
    if len(measured) < 2:
        return None
    by_name = {s['size']: s for s in measured}
    reference = by_name.get(size_name(REFERENCE_SIZE),
                            min(measured, key=lambda s: s['megapixels']))
    largest = max(measured, key=lambda s: s['megapixels'])
    ratio = within = None
    if largest is not reference:
        ratio = largest['ours']['s_per_mp'] / reference['ours']['s_per_mp']
        within = abs(ratio - 1) <= LINEAR_TOLERANCE
    return dict(reference=reference['size'], largest=largest['size'], ratio=ratio,
                tolerance=LINEAR_TOLERANCE, within=within,
                relative={s['size']: s['ours']['s_per_mp'] / reference['ours']['s_per_mp']
                          for s in measured})


def assemble(machine, options, records):
    """Everything the JSON holds: the run's context, raw records, per-size summaries."""
    names = []
    for r in records:
        if r['size'] not in names:
            names.append(r['size'])
    sizes = [summarise_size(records, name) for name in names]
    settings = {k: v for k, v in options.items() if k != 'sizes'}
    settings['sizes'] = [size_name(s) for s in options.get('sizes', [])]
    settings['weights'] = WEIGHTS_NOTE
    return dict(machine=machine, settings=settings, records=records, sizes=sizes,
                linearity=linearity(sizes))


# --------------------------------------------------------------------------- the report

def format_context(machine, options):
    lines = [
        'CPU      %s, %s cores (%s available)' % (machine['cpu'], machine['cores'],
                                                 machine['cores_available']),
        'threads  %d (OMP_NUM_THREADS for MXNet, torch.set_num_threads for the peer)'
        % machine['threads'],
        'MXNet    %s, features: %s' % (machine['mxnet'], ' '.join(machine['features'])),
        'Python   %s on %s' % (machine['python'], machine['platform']),
        'date     %s' % machine['date'],
        'weights  %s' % WEIGHTS_NOTE,
        'method   %d warm-up + %d timed iterations per process, median; %d round(s) per size, '
        'kinds alternating: %s' % (options['warmup'], options['iters'], options['repeats'],
                                   ', '.join(options['kinds'])),
    ]
    if options.get('peer'):
        lines.append('peer     %s %s (it discards 1 warm-up iteration of its own)'
                     % (options['peer'], options['peer_script']))
    if options.get('env'):
        lines.append('env      %s' % ' '.join('%s=%s' % kv for kv in options['env'].items()))
    if options.get('busy'):
        lines.append('busy     %d process(es) spinning beside every measurement (--busy)'
                     % options['busy'])
    if machine.get('env'):
        lines.append('inherited %s' % ' '.join('%s=%s' % kv for kv in machine['env'].items()))
    return '\n'.join(lines)


def _num(value, fmt='%.3f', suffix=''):
    return '-' if value is None else (fmt % value) + suffix


def _field(entry, key):
    return entry.get(key) if entry else None


def format_report(doc):
    """Two fixed-width tables: speed against the book, the peer and the bounds; then cost per
    megapixel and memory."""
    speed = [('size', '%-10s'), ('MP', '%6s'), ('ours s/it', '%10s'), ('book s/it', '%10s'),
             ('book/ours', '%10s'), ('peer s/it', '%10s'), ('ours/peer', '%10s'),
             ('sgemm bnd', '%10s'), ('ours/bnd', '%9s'), ('conv bnd', '%9s'),
             ('ours/cbnd', '%10s')]
    bf16 = any(s.get('bf16') for s in doc['sizes'])
    if bf16:
        speed += [('bf16 s/it', '%10s'), ('bf16/peer', '%10s')]
    rows = []
    for s in doc['sizes']:
        ratios = s['ratios']
        rows.append([s['size'], '%.3f' % s['megapixels'],
                     _num(_field(s['ours'], 'median_s'), '%.4f'),
                     _num(_field(s['book'], 'median_s'), '%.4f'),
                     _num(ratios['book_over_ours'], '%.2f', 'x'),
                     _num(_field(s['peer'], 'median_s'), '%.4f'),
                     _num(ratios['ours_over_peer'], '%.2f', 'x'),
                     _num(_field(s['peer'], 'bound_s'), '%.4f'),
                     _num(ratios['ours_over_sgemm_bound'], '%.2f', 'x'),
                     _num(_field(s['peer'], 'conv_bound_s'), '%.4f'),
                     _num(ratios['ours_over_conv_bound'], '%.2f', 'x')]
                    + ([_num(_field(s['bf16'], 'median_s'), '%.4f'),
                        _num(ratios.get('bf16_over_peer'), '%.2f', 'x')] if bf16 else []))
    out = ['', 'Seconds per iteration (median over rounds; ratios: median of per-round ratios)',
           _table(speed, rows)]
    lin = doc.get('linearity')
    ref = lin['reference'] if lin else size_name(REFERENCE_SIZE)
    cost = [('size', '%-10s'), ('ours s/MP', '%10s'), ('vs %s' % ref, '%11s'),
            ('ours GFLOP/s', '%13s'), ('step GFLOP', '%11s'), ('ours best', '%10s'),
            ('CPU/wall', '%9s'), ('MB ours', '%8s'), ('MB book', '%8s'), ('MB peer', '%8s')]
    rows = []
    for s in doc['sizes']:
        rows.append([s['size'], _num(_field(s['ours'], 's_per_mp'), '%.3f'),
                     _num(lin['relative'].get(s['size']) if lin else None, '%.2f', 'x'),
                     _num(_field(s['ours'], 'gflops'), '%.1f'), '%.1f' % s['conv_gflop_step'],
                     _num(_field(s['ours'], 'best_s'), '%.4f'),
                     _num(_field(s['ours'], 'cpu_per_wall'), '%.2f'),
                     _num(_field(s['ours'], 'peak_mb'), '%.0f'),
                     _num(_field(s['book'], 'peak_mb'), '%.0f'),
                     _num(_field(s['peer'], 'peak_mb'), '%.0f')])
    out += ['', 'Cost per megapixel, best round, and peak resident memory (largest over rounds; '
            'MB = MiB)', _table(cost, rows),
            'ours best: the fastest round\'s median s/iter; CPU/wall: CPU seconds over wall '
            'seconds of our process (median over rounds), well under the thread count when '
            'other work took the cores']
    if lin and lin['ratio'] is None:
        out.append('linearity in pixels not judged: no size larger than %s' % lin['reference'])
    elif lin:
        out.append('s/MP at %s is %.2fx s/MP at %s: %s (linear within %d%%)'
                   % (lin['largest'], lin['ratio'], lin['reference'],
                      'linear' if lin['within'] else 'NOT linear', LINEAR_TOLERANCE * 100))
    loads = [r['loadavg_before'] for r in doc['records'] if 'loadavg_before' in r]
    if loads:
        out.append('machine load (1-minute average before each measurement): %.1f .. %.1f on %s '
                   'cores' % (min(loads), max(loads), doc['machine'].get('cores_available', '?')))
    out.append('bnd: convolution FLOPs of forward + input-gradient over the sgemm rate the peer '
               'measured; cbnd: over its 3x3-convolution rate')
    return '\n'.join(out)


def _table(columns, rows):
    widths = [max(len(name), int(re.sub(r'\D', '', fmt))) for name, fmt in columns]

    def line(cells):
        parts = []
        for (name, fmt), width, cell in zip(columns, widths, cells):
            parts.append(cell.ljust(width) if fmt.startswith('%-') else cell.rjust(width))
        return '  '.join(parts).rstrip()

    header = line([name for name, _ in columns])
    return '\n'.join([header, '-' * len(header)] + [line(r) for r in rows])


# ---------------------------------------------------------------------------- the worker

def worker_main(args):
    """Inside the subprocess: measure one kind at one size, print one JSON line."""
    if args.threads is not None:
        # MXNet's OpenMP pool reads this once, when mxnet is first imported (below).
        os.environ['OMP_NUM_THREADS'] = str(args.threads)
    if args.worker == 'info':
        import mxnet as mx
        features = [f.name for f in mx.runtime.Features().values() if f.enabled]
        print(json.dumps(dict(mxnet=mx.__version__, features=features)))
        return 0
    if args.worker == 'schedule':
        return _schedule_worker(args.schedule)
    width, height = parse_size(args.sizes)
    if args.worker == 'book':
        seconds, total, description = _book_step_times(width, height, args.warmup, args.iters)
    else:
        seconds, total, description = _ours_step_times(
            width, height, args.warmup, args.iters,
            'bfloat16' if args.worker == 'bf16' else 'float32')
    import resource
    timed = seconds[args.warmup:]
    print(json.dumps(dict(
        kind=args.worker, width=width, height=height, warmup=args.warmup, iters=args.iters,
        threads=int(os.environ.get('OMP_NUM_THREADS', 0)), seconds=seconds,
        median_s=statistics.median(timed), final_total_loss=total, weights=description,
        peak_mb=_kib_to_mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))))
    return 0


# The preset must end within this of the book run's final total loss (the target).
BOOK_LOSS_TOLERANCE = 0.01


def time_to_book_loss(options):
    """Run the book's schedule and the fast preset, each in a fresh process, one after the
    other; compare their final-stage losses over time."""
    runs = {}
    for schedule in ('book', 'fast', 'book-bf16'):
        command = [sys.executable, '-m', 'styletransfer.cli.benchmark', '--worker', 'schedule',
                   '--schedule', schedule, '--threads', str(options['threads'])]
        done = run_measured(command, worker_env(options, 'ours'), options['timeout'] * 4)
        if done['returncode'] != 0 or done['timed_out']:
            raise SystemExit('%s: the %s schedule failed: %s' % (PROG, schedule,
                                                                 _tail(done['stderr'])))
        runs[schedule] = json.loads(done['stdout'].strip().splitlines()[-1])
        print('[time to the book\'s loss] %s schedule: %.1f s' % (
            schedule, runs[schedule]['wall_s']), file=sys.stderr, flush=True)
    summary = summarise_time_to_book_loss(runs['book'], runs['fast'])
    summary['bfloat16'] = summarise_bf16_drift(runs['book'], runs['book-bf16'])
    return summary


def summarise_bf16_drift(book, bf16):
    """How far the book's schedule run with --dtype bfloat16 moves from float32: the largest
    relative difference of the total loss over all iterations, the final one, and wall time."""
    pairs = [(a[2], b[2]) for a, b in zip(book['trace'], bf16['trace'])]
    rel = [abs(b - a) / abs(a) for a, b in pairs if a]
    return dict(wall_s=bf16['wall_s'], speedup=book['wall_s'] / bf16['wall_s'],
                final_total=pairs[-1][1], max_rel_total=max(rel), final_rel_total=rel[-1],
                iterations=len(pairs))


def summarise_time_to_book_loss(book, fast):
    """`book`, `fast`: {'wall_s', 'trace': [[stage, iteration, total, elapsed], ...],
    'stages'}. The target is the book run's last total; the preset reaches it at the first
    iteration of its last stage whose total is within BOOK_LOSS_TOLERANCE of it."""
    target = book['trace'][-1][2]
    reached = [t for stage, _, total, t in fast['trace']
               if stage == fast['stages'] and total <= target * (1 + BOOK_LOSS_TOLERANCE)]
    seconds = reached[0] if reached else None
    return dict(book_final_total=target, book_wall_s=book['wall_s'],
                fast_final_total=fast['trace'][-1][2], fast_wall_s=fast['wall_s'],
                fast_iterations=[sum(1 for r in fast['trace'] if r[0] == k)
                                 for k in range(1, fast['stages'] + 1)],
                fast_seconds_to_book_loss=seconds,
                ratio_to_book_wall=None if seconds is None else seconds / book['wall_s'],
                weights=book['weights'])


def format_time_to_book_loss(r):
    lines = ['', 'time to the book\'s loss (bundled images, %s)' % r['weights'],
             '  book schedule (Adam 500 + 300):  %.1f s, final total loss %.6g'
             % (r['book_wall_s'], r['book_final_total']),
             '  --preset fast (L-BFGS, %s iterations): %.1f s, final total loss %.6g (%+.2f%%)'
             % ('+'.join(map(str, r['fast_iterations'])), r['fast_wall_s'],
                r['fast_final_total'],
                100 * (r['fast_final_total'] / r['book_final_total'] - 1))]
    b = r.get('bfloat16')
    if b:
        lines.append('  book schedule with --dtype bfloat16: %.1f s (%.2fx faster), final total '
                     'loss %.6g; total loss off float32\'s by at most %.2f%% over its %d '
                     'iterations, %.2f%% at the end' % (
                         b['wall_s'], b['speedup'], b['final_total'], 100 * b['max_rel_total'],
                         b['iterations'], 100 * b['final_rel_total']))
    if r['fast_seconds_to_book_loss'] is None:
        lines.append('  --preset fast never came within %g%% of the book\'s final loss'
                     % (100 * BOOK_LOSS_TOLERANCE))
    else:
        lines.append('  --preset fast within %g%% of it after %.1f s = %.2f of the book run\'s '
                     'wall time' % (100 * BOOK_LOSS_TOLERANCE, r['fast_seconds_to_book_loss'],
                                    r['ratio_to_book_wall']))
    return '\n'.join(lines)


def _schedule_worker(schedule):
    """Inside the subprocess: one whole run on the bundled images, timing every iteration."""
    import mxnet as mx
    from styletransfer import images
    from styletransfer.gatys import optimise
    from styletransfer.vgg import features, weights
    from styletransfer.cli import train
    args = ['--weights', 'random'] + {'book': [], 'fast': ['--preset', 'fast'],
                                      'book-bf16': ['--dtype', 'bfloat16']}[schedule]
    config = train._config(train.parse_args(args))
    ctx = mx.cpu()
    start = time.perf_counter()
    source = weights.load('random', config.deepest, config.seed)
    extractor = features.build_extractor(source, config.content_layers, config.style_layers, ctx,
                                         dtype=config.dtype)
    normalizer = images.Normalizer(ctx)
    content, _ = images.load_image(config.content)
    style, _ = images.load_image(config.style)
    trace = []
    for event in optimise.transfer(extractor, normalizer, content, style, config, ctx):
        if hasattr(event, 'total'):
            trace.append([event.stage, event.iteration, event.total,
                          time.perf_counter() - start])
    print(json.dumps(dict(schedule=schedule, stages=len(config.stages), trace=trace,
                          wall_s=time.perf_counter() - start, weights=source.description)))
    return 0


def _random_pictures(width, height, seed=0):
    import numpy as np
    rng = np.random.RandomState(seed)
    return [rng.randint(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(2)]


def _stage(width, height, iterations):
    """A stage of this size with the book's decay interval (the book's own if it has one of this
    size), so the learning rate stays the book's during the few timed iterations."""
    from styletransfer.config import BOOK_STAGES, Stage
    book = {(s.width, s.height): s for s in BOOK_STAGES}
    model = book.get((width, height), BOOK_STAGES[0])
    return Stage(width, height, iterations, model.decay_every, model.lr)


def _ours_step_times(width, height, warmup, iterations, dtype='float32'):
    import mxnet as mx
    from styletransfer import images
    from styletransfer.gatys import optimise
    from styletransfer.vgg import features, weights
    from styletransfer.config import Config
    config, ctx = Config(), mx.cpu()
    source = weights.load('random', config.deepest, config.seed)
    extractor = features.build_extractor(source, config.content_layers, config.style_layers, ctx,
                                         dtype=dtype)
    normalizer = images.Normalizer(ctx)
    content, style = _random_pictures(width, height)
    content_x, content_targets, style_grams = optimise.targets(
        extractor, normalizer, content, style, width, height)
    stage = _stage(width, height, warmup + iterations)
    seconds, total = [], None
    objective = optimise.build_objective(extractor, content_targets, style_grams, config)
    for progress in optimise.optimise_stage(objective, content_x, stage, config, ctx):
        seconds.append(progress.seconds)
        total = progress.total
    return seconds, total, source.description


def _book_step_times(width, height, warmup, iterations):
    """The book's step as the chapter runs it, as a baseline: a plain nn.Sequential of VGG-19's
    first layers, not hybridised, weights left trainable (grad_req 'write', so every backward
    also computes weight gradients), features taken in a Python loop over the layers, Gram
    matrices through an explicit transpose, Adam, and nd.waitall after every step."""
    import mxnet as mx
    from mxnet import autograd, gluon, nd
    from mxnet.gluon import nn
    from mxnet.gluon.model_zoo import vision
    from styletransfer import images
    from styletransfer.vgg import weights
    from styletransfer.config import Config
    from styletransfer.losses import content_loss, tv_loss
    from styletransfer.gatys.optimise import GeneratedImage
    config, ctx = Config(), mx.cpu()
    source = weights.load('random', config.deepest, config.seed)
    zoo = vision.vgg19()
    net = nn.Sequential()
    for i in range(config.deepest + 1):
        net.add(zoo.features[i])
    for i, values in source.convs.items():
        for param, value in zip((net[i].weight, net[i].bias), values):
            param.shape = value.shape
            param.initialize(ctx=ctx)
            param.set_data(value)

    def extract(x):
        contents, styles = [], []
        for i in range(len(net)):
            x = net[i](x)
            if i in config.style_layers:
                styles.append(x)
            if i in config.content_layers:
                contents.append(x)
        return contents, styles

    def gram(x):
        channels = x.shape[1]
        n = x.size // channels
        x = x.reshape((channels, n))
        return nd.dot(x, x.T) / (channels * n)

    normalizer = images.Normalizer(ctx)
    content, style = _random_pictures(width, height)
    content_x = normalizer.preprocess(content, width, height)
    content_targets, _ = extract(content_x)
    _, style_features = extract(normalizer.preprocess(style, width, height))
    style_grams = [gram(y) for y in style_features]
    stage = _stage(width, height, warmup + iterations)
    image = GeneratedImage(content_x.shape)
    image.initialize(ctx=ctx)
    image.weight.set_data(content_x)
    trainer = gluon.Trainer(image.collect_params(), 'adam', {'learning_rate': stage.lr})
    x = image()
    seconds, total = [], None
    for _ in range(stage.iterations):
        start = time.perf_counter()
        with autograd.record():
            contents, styles = extract(x)
            content_l = [content_loss(y_hat, y) * config.content_weight
                         for y_hat, y in zip(contents, content_targets)]
            style_l = [(gram(y_hat) - g).square().mean() * config.style_weight
                       for y_hat, g in zip(styles, style_grams)]
            loss = nd.add_n(*style_l) + nd.add_n(*content_l) + tv_loss(x) * config.tv_weight
        loss.backward()
        trainer.step(1)
        nd.waitall()
        seconds.append(time.perf_counter() - start)
        total = loss
    return seconds, float(total.asscalar()), source.description


if __name__ == '__main__':
    sys.exit(main())
