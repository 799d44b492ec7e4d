"""Feed-forward speed side by side with the PyTorch peer (../shared/bench/peer_fast_torch.py):
one stylisation by Johnson et al.'s network, AdaIN with the style's statistics cached and with
the style encoded each time, and one training step (batch 4 at 256x256). Run from the
repository root:

    python -m benchmarks.fast --peer /tmp/peer/bin/python --sizes 512x512,1024x680 --repeats 3

Each measurement is its own process (ours: `python -m benchmarks.fast --worker ...`), ours and
the peer's alternating over --repeats rounds so that the machine's noise falls on both; the
report gives medians, the median of the per-round ratios, and our time over the
convolution-rate bound the peer prints (its convolution FLOPs over the rate of one large 3x3
convolution measured there and then). Weights are random: a pass's time does not depend on
them. The report names the CPU class the figures came from.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

from styletransfer import device

from . import summary

PROG = 'benchmarks.fast'
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PEER = os.path.join(os.path.dirname(REPO), 'shared', 'bench', 'peer_fast_torch.py')
KINDS = ('transformer', 'adain', 'train')
_PEER_LINES = {
    'seconds': re.compile(r'peer s/(?:image|step)[^)]*\)\s+([0-9.]+)'),
    'encoded': re.compile(r'style encoded each time \(median of \d+\) ([0-9.]+)'),
    'bound': re.compile(r'conv-rate bound s ([0-9.]+)'),
}


def build_parser():
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n\n')[0])
    p.add_argument('--peer', metavar='PYTHON', help='python of the peer\'s environment')
    p.add_argument('--peer-script', default=PEER)
    p.add_argument('--kinds', default='transformer,adain', help='of %s' % ', '.join(KINDS))
    p.add_argument('--sizes', default='512x512,1024x680')
    p.add_argument('--iters', type=int, default=5)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--threads', type=int, default=device.cores())
    p.add_argument('--bf16', action='store_true',
                   help='also time our stylisations in bfloat16 (a CPU with AVX-512 BF16)')
    p.add_argument('--json', metavar='PATH')
    p.add_argument('--worker', nargs=2, metavar=('KIND', 'SIZE'), help=argparse.SUPPRESS)
    return p


def median_time(fn, iters):
    fn()
    times = []
    for _ in range(iters):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def worker(kind, size, iters, bf16=False):
    """Inside the measurement process: ours, timed like the peer (the network's pass on an
    array already on the device, waited for); with `bf16` also in bfloat16, as FastStylizer
    runs it (the network converted by AMP; AdaIN's stylising graph, the style measured in
    float32)."""
    import mxnet as mx
    from mxnet import autograd, nd
    width, height = (int(v) for v in size.lower().split('x'))
    ctx = mx.cpu()
    result = {'kind': kind, 'size': size}
    if kind == 'transformer':
        from styletransfer.fast import johnson
        net = johnson.TransformerNet(1)
        net.initialize_weights(seed=0)
        # what FastStylizer runs for one picture in float32
        net = johnson.OnePicture(net, ctx)
        net.hybridize(static_alloc=True, static_shape=True)
        x = nd.random.uniform(0, 255, (1, 3, height, width), ctx=ctx)
        weights = johnson.style_weights(1, 0, ctx=ctx)
        with autograd.predict_mode():
            result['seconds'] = median_time(lambda: net(x, weights).wait_to_read(), iters)
        if bf16:
            with autograd.predict_mode():
                converted = device.to_bfloat16(net.net, ctx, x, weights)
                result['bf16'] = median_time(lambda: converted(x, weights).wait_to_read(),
                                             iters)
    elif kind == 'adain':
        from styletransfer.fast import adain
        encoder = adain.Encoder('vgg_normalised')
        decoder = adain.Decoder('vgg_normalised')
        for block in (encoder, decoder):
            block.initialize(mx.init.Xavier(magnitude=2), ctx=ctx)
        net = adain.AdaIN(encoder, decoder, ctx)
        x = nd.random.uniform(0, 1, (1, 3, height, width), ctx=ctx)
        style = nd.random.uniform(0, 1, (1, 3, height, width), ctx=ctx)
        stats = net.encode_style(style)
        result['seconds'] = median_time(lambda: net.stylise(x, [stats]).wait_to_read(), iters)
        result['encoded'] = median_time(
            lambda: net.stylise(x, [net.encode_style(style)]).wait_to_read(), iters)
        if bf16:
            half = adain.AdaIN(encoder, decoder, ctx, dtype='bfloat16')
            result['bf16'] = median_time(lambda: half.stylise(x, [stats]).wait_to_read(),
                                         iters)
    else:
        result['seconds'] = _train_step(iters, ctx)
    with open('/proc/self/status') as f:
        result['peak_mb'] = [int(line.split()[1]) for line in f
                             if line.startswith('VmHWM')][0] / 1024
    print(json.dumps(result))


def _train_step(iters, ctx, size=256, batch=4):
    """Median seconds of one training step of the Johnson recipe as fast.training runs it: the
    loss graph forward (the network, VGG on its output, VGG to the content layer on the input)
    and backward, and Adam's update. The crops are random pixels made once: the data loader is
    not timed (decoding 4 pictures costs tens of milliseconds beside seconds of arithmetic).
    The peer's loss network is VGG-16 to relu4_3 (10 convolutions); ours is the recipe's
    default, VGG-19 to relu4_4 (12)."""
    import numpy as np
    from mxnet import autograd, gluon
    from styletransfer.fast import train_johnson as tj
    from styletransfer.fast.training import TrainingSettings, imagenet_batch
    settings = TrainingSettings(iterations=1, batch_size=batch, image_size=size)
    rng = np.random.default_rng(0)
    recipe = tj.JohnsonRecipe([rng.integers(0, 256, (size, size, 3), dtype=np.uint8)],
                              tj.johnson_network('random'))
    params = recipe.build(ctx, settings)
    trainer = gluon.Trainer([p for _, p in params], 'adam', {'learning_rate': 1e-3})
    crops = {'content': imagenet_batch(
        rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8), ctx)}

    def step():
        with autograd.record():
            values = recipe.losses(crops, recipe.conditions(rng, batch))
        values[-1].backward()
        trainer.step(1)
        [float(v.asscalar()) for v in values]
        for _, p in params:
            p.data().wait_to_read()
    return median_time(step, iters)


def run(command, env):
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=3600)
    if done.returncode != 0:
        raise RuntimeError('%s failed: %s' % (' '.join(command[:4]),
                                              done.stderr.strip().splitlines()[-1:]))
    return done.stdout


def ours(kind, size, args):
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    out = run([sys.executable, '-m', 'benchmarks.fast', '--worker', kind, size,
               '--iters', str(args.iters)] + (['--bf16'] if args.bf16 else []), env)
    return json.loads(out.strip().splitlines()[-1])


def peer(kind, size, args):
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    out = run([args.peer, args.peer_script, '--model', kind, '--size', size, '--iters',
               str(args.iters), '--threads', str(args.threads)], env)
    values = {}
    for key, pattern in _PEER_LINES.items():
        match = pattern.search(out)
        if match:
            values[key] = float(match.group(1))
    if 'seconds' not in values:
        raise RuntimeError('the peer printed no time: %s' % out[-300:])
    return values


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.worker:
        return worker(*args.worker, args.iters, args.bf16)
    kinds = [k for k in args.kinds.split(',') if k]
    if any(k not in KINDS for k in kinds):
        sys.exit('%s: --kinds must be of %s' % (PROG, ', '.join(KINDS)))
    cpu = summary.cpu_class(device.cpu_model(), device.cpu_flags(), device.bfloat16_supported())
    print('on %s, %d threads' % (cpu['text'], args.threads))
    rows = []
    for kind in kinds:
        sizes = ['256x256'] if kind == 'train' else args.sizes.split(',')
        for size in sizes:
            records = []
            for r in range(args.repeats):
                order = ('ours', 'peer') if r % 2 == 0 else ('peer', 'ours')
                record = {}
                for who in order:
                    if who == 'ours':
                        record['ours'] = ours(kind, size, args)
                    elif args.peer:
                        record['peer'] = peer(kind, size, args)
                records.append(record)
            rows.append(_summary(kind, size, records))
            _print(rows[-1])
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'cpu': cpu, 'threads': args.threads, 'rows': rows}, f, indent=1)
    return 0


def _summary(kind, size, records):
    def med(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None
    row = {'kind': kind, 'size': size,
           'ours_s': med([r['ours']['seconds'] for r in records]),
           'ours_encoded_s': med([r['ours'].get('encoded') for r in records]),
           'bf16_s': med([r['ours'].get('bf16') for r in records]),
           'peak_mb': med([r['ours']['peak_mb'] for r in records])}
    if all('peer' in r for r in records):
        row.update(peer_s=med([r['peer']['seconds'] for r in records]),
                   peer_encoded_s=med([r['peer'].get('encoded') for r in records]),
                   bound_s=med([r['peer'].get('bound') for r in records]),
                   ratio=med([r['ours']['seconds'] / r['peer']['seconds'] for r in records]))
        if row['ours_encoded_s'] and row['peer_encoded_s']:
            row['ratio_encoded'] = med([r['ours']['encoded'] / r['peer']['encoded']
                                        for r in records])
        if row['bound_s']:
            row['over_bound'] = row['ours_s'] / row['bound_s']
        if row['bf16_s']:
            row['ratio_bf16'] = med([r['ours']['bf16'] / r['peer']['seconds'] for r in records])
    return row


def _print(row):
    def fmt(key, pattern='%.3f'):
        return pattern % row[key] if row.get(key) is not None else '-'
    unit = 's/step (batch 4: %.2f images/s)' % (4 / row['ours_s']) if row['kind'] == 'train' \
        else 's/image'
    text = '%-11s %-9s ours %s %s' % (row['kind'], row['size'], fmt('ours_s'), unit)
    if row.get('ours_encoded_s'):
        text += ' (style encoded each time %s)' % fmt('ours_encoded_s')
    if row.get('peer_s') is not None:
        text += '; peer %s, ours/peer %s' % (fmt('peer_s'), fmt('ratio', '%.2fx'))
        if row.get('ratio_encoded'):
            text += ' (encoded each time %s)' % fmt('ratio_encoded', '%.2fx')
        text += '; conv-rate bound %s, ours/bound %s' % (fmt('bound_s'),
                                                         fmt('over_bound', '%.2fx'))
    if row.get('bf16_s'):
        text += '; bfloat16 %s s' % fmt('bf16_s')
        if row.get('ratio_bf16'):
            text += ', bf16/peer %s' % fmt('ratio_bf16', '%.2fx')
    text += '; peak %s MB' % fmt('peak_mb', '%.0f')
    print(text, flush=True)


if __name__ == '__main__':
    sys.exit(main())
