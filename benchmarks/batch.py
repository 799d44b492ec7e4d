"""Throughput of a batch: the same small items in this process one after the other (the loop),
and on local Dask clusters of 1 and 2 worker processes.

    python -m benchmarks.batch [--items 24] [--stage 64x48:20:20] [--workers 1,2]

Every mode is measured warm: its processes have imported MXNet and built the stylizer (one
item each, not counted) before the clock starts, so the numbers compare running items, not
starting programs; the start-up (cluster, MXNet, network) is reported beside them. The loop
and every worker get `--threads` MXNet threads (default 1: on a small machine, processes are
what is compared). Weights are random (the work is the same as with pretrained ones) and the
pictures are noise made here.
"""
import argparse
import json
import math
import os
import sys
import tempfile
import time

THREADS = 1
ITEMS = 24
STAGE = '64x48:20:20'
STYLES = 4


def _pictures(folder, items):
    """Noise pictures: ceil(items / STYLES) contents and STYLES styles; the first `items`
    items of their grid."""
    import numpy as np
    from PIL import Image
    from styletransfer.batch import items as batch_items
    paths = {}
    for role, count in (('content', math.ceil(items / STYLES)), ('style', STYLES)):
        paths[role] = []
        for k in range(count):
            path = os.path.join(folder, '%s%02d.png' % (role, k))
            seed = len(paths) * 100 + k
            Image.fromarray(np.random.RandomState(seed).randint(
                0, 256, (90, 120, 3), dtype=np.uint8)).save(path)
            paths[role].append(path)
    return batch_items.grid(paths['content'], paths['style'])[:items]


def measure(items=ITEMS, stage=STAGE, workers=(1, 2), threads=THREADS, folder=None):
    """{'cpu', 'cores', 'items', 'stage', 'threads', 'modes': [{'mode', 'workers', 'seconds',
    'items_per_s', 'ratio', 'startup_s', 'failed'}]}: the loop first (ratio 1), then a
    local cluster of each number of `workers`. Must run in a process that has not imported
    MXNet yet (its threads are set here), and under `if __name__ == '__main__'` (Dask starts
    its workers by spawning Python)."""
    from styletransfer import device
    from styletransfer.batch import engine, methods
    from styletransfer.settings import Settings
    from styletransfer.vgg.network import Network
    from . import summary
    device.set_threads(threads)
    spec = methods.Spec('gatys', Network(weights='random'), 'cpu', threads)
    settings = Settings(stages=[stage])
    cpu = summary.cpu_class(device.cpu_model(), device.cpu_flags(),
                            device.bfloat16_supported())
    out = {'cpu': cpu['text'], 'cores': device.cores(), 'items': items, 'stage': stage,
           'threads': threads, 'modes': []}
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        plan = _pictures(tmp, items)

        def timed(name, count, executor, since):
            started = time.perf_counter()
            summary = engine.run(plan, spec, settings, os.path.join(tmp, name), executor)
            seconds = time.perf_counter() - started
            out['modes'].append({'mode': name, 'workers': count, 'seconds': round(seconds, 2),
                                 'items_per_s': round(items / seconds, 3),
                                 'startup_s': round(started - since, 1),
                                 'failed': summary.failed})

        since = time.perf_counter()
        engine.run(plan[:1], spec, settings, os.path.join(tmp, 'warm'), engine.InProcess())
        timed('loop', 0, engine.InProcess(), since)
        for count in workers:
            since = time.perf_counter()
            with engine.local_cluster(count, threads, dashboard=':0') as client:
                _warm_every_worker(client, plan[0], spec, settings)
                timed('%d worker%s' % (count, 's' if count > 1 else ''), count,
                      engine.OnDask(client), since)
    base = out['modes'][0]['items_per_s']
    for mode in out['modes']:
        mode['ratio'] = round(mode['items_per_s'] / base, 2)
    return out


def _warm_every_worker(client, item, spec, settings):
    """One item on each worker, so that all of them have loaded the stylizer."""
    from styletransfer.batch.worker import stylize_item
    with open(item.content, 'rb') as f:
        content = f.read()
    with open(item.style, 'rb') as f:
        style = f.read()
    task = {'content': item.content, 'style': item.style, 'settings': settings}
    client.gather([client.submit(stylize_item, content, style, task, spec, pure=False,
                                 workers=[address], allow_other_workers=False)
                   for address in client.nthreads()])


def table(result):
    lines = ['%d items of %s, MXNet threads per process %d; CPU: %s (%d cores)'
             % (result['items'], result['stage'], result['threads'], result['cpu'],
                result['cores']),
             '%-10s %9s %8s %13s %10s' % ('mode', 'seconds', 'items/s', 'ratio to loop',
                                         'start-up')]
    for m in result['modes']:
        lines.append('%-10s %9.2f %8.3f %13.2f %9.1fs' % (m['mode'], m['seconds'],
                                                          m['items_per_s'], m['ratio'],
                                                          m['startup_s']))
    return '\n'.join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog='python -m benchmarks.batch', description=(
        __doc__.split('\n\n')[0]))
    p.add_argument('--items', type=int, default=ITEMS)
    p.add_argument('--stage', default=STAGE, help='each item\'s one stage (default: %s)' % STAGE)
    p.add_argument('--workers', default='1,2', help='local cluster sizes (default: 1,2)')
    p.add_argument('--threads', type=int, default=THREADS,
                   help='MXNet threads of the loop and of each worker (default: %d)' % THREADS)
    p.add_argument('--json', metavar='PATH', help='also write the numbers to this file')
    args = p.parse_args(argv)
    result = measure(args.items, args.stage, [int(n) for n in args.workers.split(',') if n],
                     args.threads)
    print(table(result))
    if args.json:
        from styletransfer.files import write_text
        write_text(args.json, json.dumps(result, indent=1) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
