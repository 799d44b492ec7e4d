"""What runs inside each measurement process; the parent (bench.py) starts one per measurement:

    python -m benchmarks.workers ours|bf16|book --size WxH --warmup N --iters N --threads N
    python -m benchmarks.workers schedule --schedule book|fast|book-bf16 --threads N
    python -m benchmarks.workers info

Each prints its result as one JSON line, the last line of its output that starts with '{'.

- ours, bf16: our step through the package's public API only (st.Stylizer, st.Network,
  st.Settings, st.Inputs, st.Stage), timed by the run's own Progress.seconds.
- book: the book's step written plainly in MXNet the way the chapter writes it, without our
  package: an nn.Sequential of VGG-19's first layers, not hybridised, weights left trainable
  (every backward also computes weight gradients), features taken in a Python loop, Gram
  matrices through an explicit transpose, Adam, nd.waitall after every step.
- schedule: one whole run on the bundled pictures (the book's schedule, --preset fast, or the
  book's in bfloat16), every iteration's total loss and time.
- info: MXNet's version and build features.

Peak memory is the process's VmHWM (its own high-water resident set), read at its end; not
getrusage's ru_maxrss, which on Linux also counts the parent's resident size at the fork.
"""
import argparse
import json
import os
import statistics
import sys
import time

import styletransfer as st    # imports no MXNet: OMP_NUM_THREADS can still be set in main

# The VGG-19 weights are random and seeded: the time of a step does not depend on weight values,
# and nothing needs a download.
SEED = 0
# --preset fast of `styletransfer train`, as Settings fields (tests keep the two the same).
FAST_PRESET = dict(optimizer='lbfgs', stop_rtol=1e-3, stop_window=10,
                   stages=('225x150:150:1000', '450x300:80:1000'))
SCHEDULES = ('book', 'fast', 'book-bf16')

# The peer is somebody else's script in its own Python: this runs it unchanged (as __main__,
# with its own folder first on sys.path) and prints its VmHWM as it exits.
PEER_WRAPPER = r'''
import atexit, os, runpy, sys
def _peak():
    try:
        with open('/proc/self/status') as f:
            kib = [int(line.split()[1]) for line in f if line.startswith('VmHWM:')][0]
    except (OSError, IndexError):
        return
    print('peak resident memory (VmHWM) kB %d' % kib, flush=True)
script = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path[0] = os.path.dirname(os.path.abspath(script))
atexit.register(_peak)
runpy.run_path(script, run_name='__main__')
'''


def peak_mb():
    """This process's peak resident memory in MiB (VmHWM)."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024.0     # the kernel's "kB" are KiB
    except OSError:
        pass
    import resource      # no /proc: the closest there is, see the module's docstring
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def random_pictures(width, height, seed=SEED):
    """Content and style: seeded noise of exactly the stage's size (no resizing to time)."""
    import numpy as np
    rng = np.random.RandomState(seed)
    return [rng.randint(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(2)]


def timed_stage(width, height, iterations):
    """A stage of this size with the book's decay interval and learning rate (the book's own
    stage if it has one of this size), so the rate stays the book's during the few timed
    iterations."""
    book = {(s.width, s.height): s for s in st.BOOK_STAGES}
    model = book.get((width, height), st.BOOK_STAGES[0])
    return st.Stage(width, height, iterations, model.decay_every,
                    model.lr if model.lr is not None else st.Settings().lr)


# ---------------------------------------------------------------------------------- ours

def ours_step_times(width, height, warmup, iterations, dtype='float32'):
    """Seconds of every iteration of our run (the first `warmup` untimed), its last total loss
    and the weights' description."""
    stylizer = st.Stylizer(st.Network(weights='random', dtype=dtype, seed=SEED), ctx='cpu')
    content, style = random_pictures(width, height)
    settings = st.Settings(stages=(timed_stage(width, height, warmup + iterations),))
    seconds, total = [], None
    for event in stylizer.start(st.Inputs(content, style), settings):
        if isinstance(event, st.Progress):
            seconds.append(event.seconds)
            total = event.total
    return seconds, total, stylizer.description


def schedule_run(schedule):
    """One whole run on the bundled pictures: [stage, iteration, total, seconds since the start]
    of every iteration; the time includes loading the weights and building the network."""
    from styletransfer.data import bundled
    network = st.Network(weights='random', seed=SEED,
                         dtype='bfloat16' if schedule == 'book-bf16' else 'float32')
    settings = st.Settings(**FAST_PRESET) if schedule == 'fast' else st.Settings()
    start = time.perf_counter()
    stylizer = st.Stylizer(network, ctx='cpu')
    inputs = st.Inputs(bundled('rainier.jpg'), bundled('autumn-oak.jpg'))
    trace = []
    for event in stylizer.start(inputs, settings):
        if isinstance(event, st.Progress):
            trace.append([event.stage, event.iteration, event.total,
                          time.perf_counter() - start])
    return dict(schedule=schedule, stages=len(settings.stages), trace=trace,
                wall_s=time.perf_counter() - start, weights=stylizer.description)


# ------------------------------------------------------------------------- the book's step

# The chapter's numbers, written here rather than taken from our package: this is the baseline.
BOOK_CONTENT_LAYERS, BOOK_STYLE_LAYERS = [25], [0, 5, 10, 19, 28]
BOOK_CONTENT_WEIGHT, BOOK_STYLE_WEIGHT, BOOK_TV_WEIGHT = 1, 1e3, 10
BOOK_LR, BOOK_LR_FACTOR = 0.01, 0.1
# Its learning rate decays every 200 epochs at 225x150 and every 100 at 450x300; other sizes
# take the first stage's interval.
BOOK_DECAY = {(225, 150): 200, (450, 300): 100}
BOOK_RGB_MEAN, BOOK_RGB_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# Gluon's own initialisers after mx.random.seed(0), in layer order: the same values as our
# random weights (tests check), so both steps measure one network.
BOOK_WEIGHTS = ('random (mx.random.seed(%d), Gluon vgg19\'s initialisers: the same values as '
                'ours), NOT pretrained' % SEED)


def book_network(ctx):
    """The chapter's network: VGG-19's features up to the deepest layer used, in a plain
    nn.Sequential. Random weights instead of pretrained=True; Gluon initialises them when the
    first picture passes."""
    import mxnet as mx
    from mxnet.gluon import nn
    from mxnet.gluon.model_zoo import vision
    mx.random.seed(SEED)
    vgg = vision.vgg19()
    net = nn.Sequential()
    for i in range(max(BOOK_CONTENT_LAYERS + BOOK_STYLE_LAYERS) + 1):
        net.add(vgg.features[i])
    net.initialize(ctx=ctx)
    return net


def book_step_times(width, height, warmup, iterations):
    """The chapter's training loop at one size: seconds of every iteration (the first `warmup`
    untimed by the caller), the last total loss, the weights' description. Only MXNet."""
    import mxnet as mx
    from mxnet import autograd, gluon, image, init, nd
    ctx = mx.cpu()
    net = book_network(ctx)
    mean, std = nd.array(BOOK_RGB_MEAN, ctx=ctx), nd.array(BOOK_RGB_STD, ctx=ctx)

    def preprocess(picture):
        picture = image.imresize(nd.array(picture, dtype='uint8'), width, height)
        picture = (picture.astype('float32').as_in_context(ctx) / 255 - mean) / std
        return picture.transpose((2, 0, 1)).expand_dims(axis=0)

    def extract(x):
        contents, styles = [], []
        for i in range(len(net)):
            x = net[i](x)
            if i in BOOK_STYLE_LAYERS:
                styles.append(x)
            if i in BOOK_CONTENT_LAYERS:
                contents.append(x)
        return contents, styles

    def gram(x):
        channels, n = x.shape[1], x.size // x.shape[1]
        x = x.reshape((channels, n))
        return nd.dot(x, x.T) / (channels * n)

    def tv(y):
        return 0.5 * ((y[:, :, 1:, :] - y[:, :, :-1, :]).abs().mean()
                      + (y[:, :, :, 1:] - y[:, :, :, :-1]).abs().mean())

    class GeneratedImage(gluon.Block):
        def __init__(self, shape, **kwargs):
            super().__init__(**kwargs)
            self.weight = self.params.get('weight', shape=shape)

        def forward(self):
            return self.weight.data()

    content, style = random_pictures(width, height)
    content_x = preprocess(content)
    content_y, _ = extract(content_x)
    _, style_y = extract(preprocess(style))
    decay_every = BOOK_DECAY.get((width, height), BOOK_DECAY[225, 150])
    generated = GeneratedImage(content_x.shape)
    generated.initialize(init.Constant(content_x), ctx=ctx, force_reinit=True)
    trainer = gluon.Trainer(generated.collect_params(), 'adam', {'learning_rate': BOOK_LR})
    style_grams = [gram(y) for y in style_y]
    x = generated()
    seconds, loss = [], None
    for i in range(warmup + iterations):
        start = time.perf_counter()
        with autograd.record():
            contents, styles = extract(x)
            content_l = [(y_hat - y).square().mean() * BOOK_CONTENT_WEIGHT
                         for y_hat, y in zip(contents, content_y)]
            style_l = [(gram(y_hat) - g).square().mean() * BOOK_STYLE_WEIGHT
                       for y_hat, g in zip(styles, style_grams)]
            loss = nd.add_n(*style_l) + nd.add_n(*content_l) + tv(x) * BOOK_TV_WEIGHT
        loss.backward()
        trainer.step(1)
        nd.waitall()
        seconds.append(time.perf_counter() - start)
        if i % decay_every == 0 and i != 0:
            trainer.set_learning_rate(trainer.learning_rate * BOOK_LR_FACTOR)
    return seconds, float(loss.asscalar()), BOOK_WEIGHTS


# ------------------------------------------------------------------------------ the process

def build_parser():
    p = argparse.ArgumentParser(prog='python -m benchmarks.workers',
                                description='One measurement, for benchmarks.bench.')
    p.add_argument('kind', choices=('ours', 'bf16', 'book', 'schedule', 'info'))
    p.add_argument('--size', default='225x150', metavar='WxH')
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--iters', type=int, default=5)
    p.add_argument('--threads', type=int)
    p.add_argument('--schedule', choices=SCHEDULES, default='book')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        # MXNet's OpenMP pool reads this once, when mxnet is first imported (below).
        os.environ['OMP_NUM_THREADS'] = str(args.threads)
    try:
        result = _measure(args)
    except st.StyleTransferError as error:     # e.g. too little memory for the size: one line
        print('%s: %s' % (args.kind, error), file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


def _measure(args):
    if args.kind == 'info':
        import mxnet as mx
        features = [f.name for f in mx.runtime.Features().values() if f.enabled]
        return dict(mxnet=mx.__version__, features=features)
    if args.kind == 'schedule':
        return schedule_run(args.schedule)
    width, height = (int(v) for v in args.size.lower().split('x'))
    if args.kind == 'book':
        seconds, total, weights = book_step_times(width, height, args.warmup, args.iters)
    else:
        seconds, total, weights = ours_step_times(
            width, height, args.warmup, args.iters,
            'bfloat16' if args.kind == 'bf16' else 'float32')
    return dict(kind=args.kind, width=width, height=height, warmup=args.warmup,
                iters=args.iters, threads=int(os.environ.get('OMP_NUM_THREADS', 0)),
                seconds=seconds, median_s=statistics.median(seconds[args.warmup:]),
                final_total_loss=total, weights=weights, peak_mb=peak_mb())


if __name__ == '__main__':
    sys.exit(main())
