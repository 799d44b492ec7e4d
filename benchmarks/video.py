"""Video: frames per second and warping error per method, with and without the temporal term,
on a test clip with real texture and motion (a photo panned and zoomed: smooth synthetic frames
fool optical flow). Run from the repository root:

    python -m benchmarks.video [--frames 8] [--size 160x112] [--strip docs/video-strip.jpg]

The warping error is the mean over consecutive frames of the masked mean squared difference
between a stylised frame and the previous stylised frame warped onto it by the flow of the
original frames (styletransfer.video.flow.warping_error; pixels in [0, 1]). All weights are
random (seeded): nothing pretrained exists on this project's machines, so the pictures show
what the temporal term does to consistency, not what a pretrained style looks like. The
optimisation uses the README gallery's weights (style 1e9, TV 1), with which random features
still move the picture; the feed-forward network is a TransformerNet with random weights.
"""
import argparse
import json
import sys
import time


import styletransfer as st
from styletransfer import device
from styletransfer.data import bundled
from styletransfer.video import flow as fl
from styletransfer.video import io as vio
from styletransfer.video import stylize as vs
from styletransfer.video import synthetic as syn

PROG = 'benchmarks.video'


def build_parser():
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n\n')[0])
    p.add_argument('--frames', type=int, default=8)
    p.add_argument('--size', default='160x112', metavar='WxH')
    p.add_argument('--iterations', type=int, default=40, help='per frame, the optimisation')
    p.add_argument('--gatys-weight', type=float, default=vs_default('gatys'))
    p.add_argument('--fast-weight', type=float, default=vs_default('fast'))
    p.add_argument('--strip', metavar='PATH', help='save frames of each run as one picture')
    p.add_argument('--json', metavar='PATH', help='also write the figures as JSON')
    p.add_argument('--threads', type=int)
    return p


def vs_default(method):
    from styletransfer.cli import video
    return video.TEMPORAL_WEIGHT if method == 'gatys' else video.FEED_FORWARD_WEIGHT


def clip(count, size):
    """A photo panned and zoomed in: real texture, known motion."""
    return syn.panning_frames(count, size, texture=bundled('tubingen.jpg'), pan=(3.0, 1.5),
                              zoom=1.01, seed=0)


def measure(frames, method, weight):
    """(stylised frames, frames per second, warping error) of one method and weight."""
    store_pictures = []

    class Memory:       # a FrameStore kept in memory: the benchmark times stylisation only
        def done(self):
            return []

        def save(self, index, image):
            store_pictures.append(image)
    method.temporal_weight = weight
    started = time.perf_counter()
    records = list(vs.stylize_frames([vio.Frame(i, i / 25, f) for i, f in enumerate(frames)],
                                     method, Memory(), len(frames)))
    seconds = time.perf_counter() - started
    return store_pictures, len(records) / seconds, fl.warping_error(store_pictures, frames)


def main(argv=None):
    args = build_parser().parse_args(argv)
    threads = device.set_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split('x'))
    frames = clip(args.frames, (width, height))
    style = st.Inputs(frames[0], bundled('starry_night.jpg')).style
    stylizer = st.Stylizer(st.Network(weights='random'), ctx='cpu')
    settings = st.Settings(stages=['%dx%d:%d:1000:0.05' % (width, height, args.iterations)],
                           style_weight=1e9, tv_weight=1.0)
    gatys = vs.GatysFrames(stylizer, settings, {'style': style}, 0.0)
    fast = st.FastStylizer(_random_network(), ctx='cpu')
    feed = vs.FeedForwardFrames(lambda f: fast.picture(f, st.FastSettings()), 0.0)
    rows, results = [], {}
    for name, method, weight in (('gatys', gatys, args.gatys_weight),
                                 ('fast (random TransformerNet)', feed, args.fast_weight)):
        for w in (0.0, weight):
            pictures, fps, error = measure(frames, method, w)
            results['%s, temporal weight %g' % (name, w)] = {'fps': fps, 'warping_error': error}
            rows.append(('%s, temporal weight %g' % (name, w), pictures))
    print('%d frames of %dx%d (tubingen.jpg panned and zoomed), %d threads, %s'
          % (len(frames), width, height, threads, _cpu()))
    print('%-44s %10s %16s %8s' % ('method', 'frames/s', 'warping error', 'ratio'))
    names = list(results)
    for k, name in enumerate(names):
        base = results[names[k - k % 2]]['warping_error']
        r = results[name]
        print('%-44s %10.3f %16.6f %8.2f' % (name, r['fps'], r['warping_error'],
                                             r['warping_error'] / base))
    if args.strip:
        _strip(args.strip, frames, rows)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(results=results, frames=len(frames), size=[width, height],
                           threads=threads, cpu=_cpu()), f, indent=1)
    return 0


def _random_network():
    import mxnet as mx
    from styletransfer.fast import johnson, zoo
    net = johnson.TransformerNet(1)
    net.initialize_weights(seed=0)
    net(mx.nd.zeros((1, 3, 16, 16)), johnson.style_weights(1, 0))
    return zoo.LoadedNet(net, 'johnson', 1, ['random'], 'imagenet',
                         'random weights (seed 0), NOT trained', '(random)')


def _cpu():
    from . import summary
    return summary.cpu_class(device.cpu_model(), device.cpu_flags(),
                             device.bfloat16_supported())['text']


def _strip(path, frames, rows, every=2):
    from styletransfer.report import contact_sheet
    panels = [('frame %d' % i, f) for i, f in enumerate(frames) if i % every == 0]
    sheets = [contact_sheet(panels, path, height=96, caption='the clip')]
    for name, pictures in rows:
        sheets.append(contact_sheet([('frame %d' % i, p) for i, p in enumerate(pictures)
                                     if i % every == 0], path, height=96, caption=name))
    from PIL import Image
    width = max(s.width for s in sheets)
    strip = Image.new('RGB', (width, sum(s.height for s in sheets)), (255, 255, 255))
    top = 0
    for sheet in sheets:
        strip.paste(sheet, (0, top))
        top += sheet.height
    from styletransfer.files import atomic_path
    with atomic_path(path) as tmp:
        strip.save(tmp, quality=90)


if __name__ == '__main__':
    sys.exit(main())
