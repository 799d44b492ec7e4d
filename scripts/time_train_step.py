#!/usr/bin/env python3
"""Images per second of one training step of the Johnson recipe (batch 4 at 256x256, float32,
random VGG-19 and TransformerNet weights: a step's time does not depend on weight values),
beside ../shared/bench/peer_fast_torch.py --model train, each in its own process, alternating.

    python scripts/time_train_step.py --rounds 3 --iters 3 --peer /tmp/peer/bin/python

A step is what styletransfer.fast.training runs per iteration: the loss graph forward (the
network, VGG on its output, VGG to the content layer on the input) and backward, and Adam's
update. The crops are random pixels made once: the data loader is not timed (decoding 4
pictures costs tens of milliseconds beside seconds of arithmetic). The peer's loss network is
VGG-16 to relu4_3: 10 convolutions. Ours defaults to VGG-19 to relu4_4, the last ReLUs of the
same blocks: 12 convolutions (conv3_4 and conv4_4 more); with --vgg16-layers (relu1_2,
relu2_2, relu3_3, relu4_3 of VGG-19) 11, since relu4_3 comes after all four of block 3.
Peak memory: the largest resident set of the process (ours) or of the peer's process.
"""
import argparse
import os
import platform
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = os.path.join(os.path.dirname(ROOT), 'shared', 'bench', 'peer_fast_torch.py')


def cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown CPU'


def ours(iters, size, batch, style_layers):
    """Median seconds per step after one warm-up step, in this process."""
    import numpy as np
    sys.path.insert(0, ROOT)
    from mxnet import autograd, gluon
    from styletransfer.fast import train_johnson as tj
    from styletransfer.fast.training import TrainingSettings, imagenet_batch
    settings = TrainingSettings(iterations=1, batch_size=batch, image_size=size)
    rng = np.random.default_rng(0)
    recipe = tj.JohnsonRecipe([rng.integers(0, 256, (size, size, 3), dtype=np.uint8)],
                              tj.johnson_network('random', style_layers=style_layers))
    import mxnet as mx
    ctx = mx.cpu()
    params = recipe.build(ctx, settings)
    trainer = gluon.Trainer([p for _, p in params], 'adam', {'learning_rate': 1e-3})
    pictures = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    batch_nd = {'content': imagenet_batch(pictures, ctx)}
    times = []
    for k in range(iters + 1):
        start = time.perf_counter()
        with autograd.record():
            values = recipe.losses(batch_nd, recipe.conditions(rng, batch))
        values[-1].backward()
        trainer.step(1)
        [float(v.asscalar()) for v in values]
        for _, p in params:
            p.data().wait_to_read()
        if k:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


# The peer runs inside this, in its own interpreter, so that it reports its own peak memory.
PEAK_WRAPPER = '''import resource, runpy, sys
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
print('peak %.0f MB' % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
'''


def run(command, env):
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit('failed: %s\n%s' % (' '.join(command), done.stderr[-2000:]))
    return done.stdout


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--iters', type=int, default=3, help='timed steps per process (median)')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--peer', help='python of an environment with torch, to run the peer too')
    p.add_argument('--vgg16-layers', action='store_true',
                   help='style layers relu1_2,relu2_2,relu3_3,relu4_3 (the peer\'s names)')
    p.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    layers = ('relu1_2', 'relu2_2', 'relu3_3', 'relu4_3') if a.vgg16_layers else \
        ('relu1_2', 'relu2_2', 'relu3_4', 'relu4_4')
    if a.worker:
        import resource
        seconds = ours(a.iters, 256, 4, layers)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print('seconds %.4f peak %.0f MB' % (seconds, peak))
        return 0
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    print('%s, %d threads, load average %s' % (cpu_name(), a.threads,
                                               ' '.join('%.2f' % v for v in os.getloadavg())))
    mine = [sys.executable, os.path.abspath(__file__), '--worker', '--iters', str(a.iters)] + (
        ['--vgg16-layers'] if a.vgg16_layers else [])
    for r in range(1, a.rounds + 1):
        found = re.search(r'seconds ([\d.]+) peak (\d+)', run(mine, env))
        s, peak = float(found.group(1)), float(found.group(2))
        print('round %d: ours  %.2f s/step, %.3f images/s, peak %.0f MB (style layers %s)'
              % (r, s, 4 / s, peak, ','.join(layers)), flush=True)
        if a.peer:
            out = run([a.peer, '-c', PEAK_WRAPPER, PEER, '--model', 'train', '--iters',
                       str(a.iters), '--threads', str(a.threads)], env)
            s = float(re.search(r'\(median of \d+\) ([\d.]+)', out).group(1))
            peak = float(re.search(r'peak (\d+) MB', out).group(1))
            print('round %d: peer  %.2f s/step, %.3f images/s, peak %.0f MB (VGG-16 relu1_2..'
                  'relu4_3)' % (r, s, 4 / s, peak), flush=True)
    print('load average after: %s' % ' '.join('%.2f' % v for v in os.getloadavg()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
