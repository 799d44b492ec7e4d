"""Seconds per optimisation step of ours, of the book's plain step, and of a PyTorch peer, image
size by image size, each measured in its own process. Run from the repository root:

    python -m benchmarks.bench --peer /tmp/peer/bin/python --book --sizes 225x150,450x300

Every measurement is a subprocess (benchmarks/workers.py), so the peak resident memory reported
is that size's alone and OMP_NUM_THREADS is set before MXNet is imported. With --peer, ours, the
peer (and the book's step with --book) alternate per size over --repeats rounds, so that the
machine's noise falls on all of them alike; ratios are medians of per-round ratios.

The VGG-19 weights are random (seeded): the time of a step does not depend on weight values, and
the benchmark needs no download. Every report names the CPU class the figures came from.

Exit status: 0 when every measurement ran, 1 when any failed, 2 for bad options.
"""
import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

import styletransfer as st
from styletransfer import device
from styletransfer.files import write_text

try:
    from . import summary, workers
except ImportError:
    if __name__ != '__main__':
        raise
    # Run as a file, it has no package to find its siblings in (short of patching sys.path).
    sys.exit('benchmarks/bench.py is part of the benchmarks package: run it from the '
             'repository root as  python -m benchmarks.bench')

PROG = 'benchmarks.bench'
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)                 # workers run from here: python -m benchmarks...
DEFAULT_PEER_SCRIPT = os.path.join(os.path.dirname(REPO), 'shared', 'bench', 'peer_torch.py')
DEFAULT_SIZES = '225x150,450x300,900x600,1200x800'
DEFAULT_WARMUP, DEFAULT_ITERS, DEFAULT_REPEATS = 2, 5, 3
DEFAULT_TIMEOUT = 1800              # seconds for one measurement: a 1200x800 book row needs
                                    # a few minutes, a hung engine should not cost hours
POLL_SECONDS = 0.1                  # how often the parent looks at a running measurement
RESULT_PREFIX = '{'                 # the worker's result is its last stdout line that is JSON
# Environment variables that steer threads or MXNet's engine: recorded with every run.
THREAD_ENV_PREFIXES = ('OMP_', 'KMP_', 'GOMP_', 'MXNET_', 'MKL', 'DNNL_', 'OPENBLAS_')


class BadInput(Exception):
    pass


class ScheduleFailed(Exception):
    pass


# ------------------------------------------------------------------------------- arguments

def parse_size(text):
    """'450x300' -> (450, 300)."""
    try:
        width, height = (int(v) for v in text.strip().lower().split('x'))
    except ValueError:
        raise BadInput('size %r: expected WIDTHxHEIGHT, e.g. 450x300' % text) from None
    smallest = st.Network().min_side      # the book's layers: conv5_1 must stay 1x1 or larger
    if min(width, height) < smallest:
        raise BadInput('size %s: each side needs at least %d pixels' % (text, smallest))
    return width, height


def available_cores():
    return len(os.sched_getaffinity(0))


def build_parser():
    p = argparse.ArgumentParser(
        prog='python -m benchmarks.bench',
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
                   help='the peer (default: ../shared/bench/peer_torch.py beside the '
                        'repository)')
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
                   help='also time our step with the network in bfloat16 (dtype bfloat16; '
                        'left out, with a line saying so, on a CPU that cannot run it)')
    p.add_argument('--time-to-book-loss', action='store_true',
                   help='also run the book\'s whole schedule, --preset fast and the book\'s '
                        'schedule in bfloat16 on the bundled images (random weights), each in '
                        'its own process; report the time the preset takes to reach the book '
                        'run\'s final total loss (within 1%%) and how far bfloat16 moves the '
                        'losses; --sizes "" runs only this')
    return p


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:       # usage, --help or argparse's own error, already printed
        return stop.code if isinstance(stop.code, int) else 2
    cpu = cpu_info()
    try:
        options = check(args, cpu)
    except BadInput as error:
        print('%s: error: %s' % (PROG, error), file=sys.stderr)
        return 2
    return run(options, cpu)


def check(args, cpu):
    """The options as a dict of plain values, or BadInput naming the first bad one."""
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
    # bfloat16 is left out, not refused, where the CPU cannot run it: the rest still measures.
    left_out = None
    if (args.bf16 or args.time_to_book_loss) and not cpu['bfloat16']:
        parts = (['--bf16'] if args.bf16 else []) + (
            ['the bfloat16 run of --time-to-book-loss'] if args.time_to_book_loss else [])
        left_out = dict(parts=parts, why=summary.bfloat16_missing(cpu))
    bf16 = args.bf16 and cpu['bfloat16']
    kinds = (['ours'] + (['peer'] if args.peer else []) + (['book'] if args.book else [])
             + (['bf16'] if bf16 else []))
    return dict(sizes=sizes, threads=threads, warmup=args.warmup, iters=args.iters,
                repeats=args.repeats, kinds=kinds, peer=args.peer,
                peer_script=os.path.abspath(args.peer_script) if args.peer else None,
                env=env, json=args.json, timeout=args.timeout,
                time_to_book_loss=args.time_to_book_loss, busy=args.busy, left_out=left_out)


# ---------------------------------------------------------------------- machine and CPU

def cpu_info():
    """The CPU class (summary.cpu_class) of this machine."""
    return summary.cpu_class(cpu_model(), device.cpu_flags(), device.bfloat16_supported())


def cpu_model():
    return device.cpu_model() or platform.processor() or 'unknown CPU'


def mxnet_info(options):
    done = run_measured(worker_command('info', None, options), worker_env(options, 'info'), 300)
    try:
        return parse_worker_output(done['stdout'])
    except ValueError:
        return {'mxnet': 'unknown (%s)' % _tail(done['stderr'], 1), 'features': []}


def machine_info(threads, mxnet, cpu):
    return dict(cpu=cpu['model'], cpu_class=cpu, cores=os.cpu_count(),
                cores_available=available_cores(), threads=threads, mxnet=mxnet.get('mxnet'),
                features=mxnet.get('features', []), python=platform.python_version(),
                platform=platform.platform(),
                date=datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
                env={k: v for k, v in sorted(os.environ.items())
                     if k.startswith(THREAD_ENV_PREFIXES)})


# --------------------------------------------------------------------------- the parent

def run(options, cpu):
    machine = machine_info(options['threads'], mxnet_info(options), cpu)
    print(summary.format_context(machine, options), flush=True)
    records = []
    with busy_processes(options['busy']):
        doc = _measure_all(options, machine, records) or summary.assemble(machine, options,
                                                                          records)
        if options['time_to_book_loss']:
            try:
                doc['time_to_book_loss'] = time_to_book_loss(options, cpu)
            except ScheduleFailed as error:
                print('%s: %s' % (PROG, error), file=sys.stderr)
                return 1
            write_text(options['json'], json.dumps(doc, indent=2) + '\n')
    if records:
        print(summary.format_report(doc))
    if options['time_to_book_loss']:
        print(summary.format_time_to_book_loss(doc['time_to_book_loss']))
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
                doc = summary.assemble(machine, options, records)
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
    return env


def worker_command(kind, size, options, schedule=None):
    """The command of one measurement. Ours run as `python -m benchmarks.workers` from the
    repository root (run_measured's cwd), the peer through workers.PEER_WRAPPER in its own
    Python."""
    if kind == 'peer':
        return [options['peer'], '-c', workers.PEER_WRAPPER, options['peer_script'],
                '--size', summary.size_name(size), '--iters', str(options['iters']),
                '--threads', str(options['threads'])]
    command = [sys.executable, '-m', 'benchmarks.workers', kind]
    if kind == 'info':
        return command
    if kind == 'schedule':
        return command + ['--schedule', schedule, '--threads', str(options['threads'])]
    return command + ['--size', summary.size_name(size), '--warmup', str(options['warmup']),
                      '--iters', str(options['iters']), '--threads', str(options['threads'])]


def measure(kind, size, number, options):
    """One measurement in a fresh process -> a record (dict), 'ok' False when it failed."""
    # The load before the start shows which rounds other work on the machine disturbed.
    record = dict(kind=kind, size=summary.size_name(size), round=number, ok=False,
                  loadavg_before=os.getloadavg()[0])
    done = run_measured(worker_command(kind, size, options), worker_env(options, kind),
                        options['timeout'])
    # CPU seconds beside wall seconds: on a shared machine the gap shows time spent waiting.
    record.update(wall_s=done['wall_s'], cpu_s=done['cpu_s'],
                  process_peak_mb=done['process_peak_mb'])
    if done['timed_out']:
        record['error'] = 'timed out after %g s' % options['timeout']
        return record
    if done['returncode'] != 0:
        record['error'] = 'exit status %d: %s' % (done['returncode'], _tail(done['stderr']))
        return record
    try:
        if kind == 'peer':
            result = parse_peer_output(done['stdout'])
            if 'peak_mb' not in result:     # no /proc in the peer: the parent's reading
                result['peak_mb'] = done['process_peak_mb']
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


def _vmhwm_mb(pid):
    """A running process's peak resident memory so far (VmHWM, MiB), None once it is gone."""
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        pass
    return None


def run_measured(command, env, timeout):
    """Run `command` from the repository root; return its output, exit status, CPU and wall
    seconds, and its peak resident memory as the parent saw it.

    os.wait4 gives the CPU time of exactly this child, unlike RUSAGE_CHILDREN, which adds up
    every child waited for so far. Memory is the child's VmHWM, read every POLL_SECONDS while it
    runs (a high-water mark only grows, so the last reading is the largest): it needs nothing
    from the child and survives a child killed by a timeout, but may miss its very last moments.
    ru_maxrss would not do: it also counts the parent's resident size at the fork.
    """
    start = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                env=env, cwd=REPO)
        timed_out, peak = False, None
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                peak = _vmhwm_mb(proc.pid) or peak
                if time.monotonic() - start > timeout:
                    timed_out = True
                    proc.kill()
                    pid, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(POLL_SECONDS)
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
                    process_peak_mb=peak, wall_s=time.monotonic() - start,
                    cpu_s=usage.ru_utime + usage.ru_stime)


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
    # printed by workers.PEER_WRAPPER as the peer exits
    'peak': re.compile(r'^peak resident memory \(VmHWM\) kB (?P<peak_kib>\d+)$'),
}
_PEER_TEXT_FIELDS = ('torch',)
_PEER_INT_FIELDS = ('iters', 'width', 'height', 'threads', 'peak_kib')


def parse_peer_output(text):
    """The numbers peer_torch.py (and the wrapper) print -> dict; ValueError if its step time
    is missing."""
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
    if 'peak_kib' in found:
        found['peak_mb'] = found.pop('peak_kib') / 1024.0
    return found


# ------------------------------------------------------------------- time to the book's loss

def time_to_book_loss(options, cpu):
    """Run the book's schedule, the fast preset and (where the CPU runs it) the book's schedule
    in bfloat16, each in a fresh process, one after the other; compare their losses over time."""
    schedules = [s for s in workers.SCHEDULES if s != 'book-bf16' or cpu['bfloat16']]
    runs = {}
    for schedule in schedules:
        command = worker_command('schedule', None, options, schedule)
        done = run_measured(command, worker_env(options, 'ours'), options['timeout'] * 4)
        if done['returncode'] != 0 or done['timed_out']:
            raise ScheduleFailed('the %s schedule failed: %s' % (
                schedule, 'timed out' if done['timed_out'] else _tail(done['stderr'])))
        runs[schedule] = parse_worker_output(done['stdout'])
        print('[time to the book\'s loss] %s schedule: %.1f s' % (
            schedule, runs[schedule]['wall_s']), file=sys.stderr, flush=True)
    result = summary.summarise_time_to_book_loss(runs['book'], runs['fast'])
    result['cpu'] = cpu['text']
    if 'book-bf16' in runs:
        result['bfloat16'] = summary.summarise_bf16_drift(runs['book'], runs['book-bf16'])
    else:
        result['bfloat16'] = None
        result['bfloat16_left_out'] = summary.bfloat16_missing(cpu)
    return result


if __name__ == '__main__':
    sys.exit(main())
