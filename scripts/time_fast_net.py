#!/usr/bin/env python3
"""Seconds for one feed-forward stylisation (pixels in, clipped pixels out), hybridised with
static_alloc, float32, on the CPU: a TransformerNet with random weights, or a network file.

    OMP_NUM_THREADS=2 python scripts/time_fast_net.py --size 512 --repeats 7
"""
import argparse
import os
import platform
import sys
import time

# run from a clone without installing the package
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mxnet import nd  # noqa: E402

from styletransfer.errors import StyleTransferError  # noqa: E402
from styletransfer.fast import johnson, zoo  # noqa: E402


def cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown CPU'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', type=int, default=512, help='square side in pixels (512)')
    parser.add_argument('--repeats', type=int, default=7, help='timed runs after a warm-up (7)')
    parser.add_argument('--net', help='a network file or name for zoo.get_net (default: a '
                                      'random one-style TransformerNet)')
    args = parser.parse_args(argv)
    if args.size < 16 or args.repeats < 1:
        parser.error('--size must be >= 16 and --repeats >= 1')
    try:
        if args.net:
            net = zoo.get_net(args.net)
        else:
            block = johnson.TransformerNet(1)
            block.initialize_weights(seed=0)
            net = zoo.LoadedNet(block, 'johnson', 1, ['random'], block.convention, '', 'random')
    except StyleTransferError as e:
        parser.exit(2, '%s: error: %s\n' % (parser.prog, e))
    net.block.hybridize(static_alloc=True, static_shape=True)
    pixels = nd.random.uniform(0, 255, shape=(1, 3, args.size, args.size))
    net.stylise(pixels).wait_to_read()          # traces and plans the graph
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        net.stylise(pixels).wait_to_read()
        times.append(time.perf_counter() - start)
    times.sort()
    print('%dx%d, %s, OMP_NUM_THREADS=%s, load average %s' % (
        args.size, args.size, cpu_name(), os.environ.get('OMP_NUM_THREADS', 'unset'),
        ' '.join('%.2f' % v for v in os.getloadavg())))
    print('seconds: min %.3f, median %.3f (%s)' % (times[0], times[len(times) // 2],
                                                  ' '.join('%.3f' % t for t in times)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
