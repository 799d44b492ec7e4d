"""styletransfer video IN.mp4 -o OUT.mp4 --style STYLE: stylise a video frame by frame, each
frame tied to the previous result where the optical flow says the picture moved, keeping the
frame rate and the audio. Finished frames are kept in a folder beside the output, so a stopped
run (Ctrl-C) continues where it stopped when the same command is run again."""
import argparse
import os
import shutil
import signal
import sys

from styletransfer import device
from styletransfer.cli.common import EXIT_INTERRUPTED, guarded
from styletransfer.cli.train import add_device_options, add_method_options, method_objects
from styletransfer.errors import StyleTransferError
from styletransfer.settings import Settings, Stage

PROG = 'styletransfer video'
METHODS = ('gatys', 'fast', 'adain')
# The optimisation's default per frame: one stage at the frame's size.
ITERATIONS = 150
# Weight of the temporal loss (optimisation): Ruder et al. used a few hundred with weights of
# the same order as the book's; it halves the warping error on the tests' panned clip.
TEMPORAL_WEIGHT = 200.0
# Feed-forward methods: the share of the warped previous output on reliable pixels.
FEED_FORWARD_WEIGHT = 0.6


def build_parser(prog=PROG):
    p = argparse.ArgumentParser(
        prog=prog, description='Stylise a video without flicker: each frame starts from the '
        'previous result moved along the optical flow, and a temporal loss keeps it there on '
        'the pixels the flow can trust (Ruder et al. 2016). Keeps the frame rate and the audio.')
    p.add_argument('input', metavar='IN', help='the video (anything FFmpeg reads)')
    p.add_argument('-o', '--output', required=True, metavar='OUT.mp4', help='H.264 MP4 to write')
    p.add_argument('--style', metavar='PICTURE',
                   help='the style picture (the optimisation; a network carries its own)')
    p.add_argument('--method', choices=METHODS, default='gatys',
                   help='gatys: the book\'s optimisation per frame (default); fast: a trained '
                        'network\'s one pass per frame (--model); adain: any style in one pass '
                        '(--style, --decoder, --encoder)')
    p.add_argument('--model', metavar='MODEL', help='the network of --method fast (a file, or '
                   'a name under ~/.styletransfer/nets)')
    p.add_argument('--style-mix', metavar='S:W,S:W',
                   help='styles of a multi-style network and their weights')
    p.add_argument('--decoder', metavar='FILE', help='adain: the decoder (decoder.pth or ours)')
    p.add_argument('--encoder', metavar='FILE', help='adain: its encoder (the authors\' '
                   'vgg_normalised.pth; default: this project\'s VGG-19, --weights)')
    p.add_argument('--alpha', type=float, default=1.0, metavar='A',
                   help='adain: content/style trade-off in [0, 1] (default: 1)')
    p.add_argument('--size', metavar='WxH|W', help='frame size (default: the video\'s; a width '
                   'alone keeps the aspect ratio); --stage sizes override it')
    p.add_argument('--start', type=float, default=0.0, metavar='SECONDS',
                   help='where the cut starts (default: 0)')
    p.add_argument('--duration', type=float, metavar='SECONDS', help='length of the cut')
    p.add_argument('--temporal-weight', type=float, metavar='W',
                   help='gatys: weight of the temporal loss (default: %g); fast: the share of '
                        'the warped previous output on reliable pixels, 0..1 (default: %g); 0 '
                        'stylises every frame on its own' % (TEMPORAL_WEIGHT,
                                                             FEED_FORWARD_WEIGHT))
    p.add_argument('--iterations', type=int, default=ITERATIONS, metavar='N',
                   help='iterations per frame when no --stage is given (default: %(default)s)')
    p.add_argument('--frames', metavar='DIR', help='folder of finished frames (default: '
                   'OUT.frames beside the output; removed once the video is written)')
    p.add_argument('--overwrite', action='store_true', help='replace OUT if it exists')
    g = p.add_argument_group('one film on several processes or machines (Dask)')
    g.add_argument('--workers', type=int, default=0, metavar='N',
                   help='stylise chunks of the film on a local Dask cluster of N processes')
    g.add_argument('--scheduler', metavar='tcp://HOST:PORT', help='or on an existing cluster')
    g.add_argument('--chunk', type=int, default=24, metavar='K',
                   help='frames per chunk; scene cuts also start one (default: %(default)s)')
    g.add_argument('--overlap', type=int, default=4, metavar='N',
                   help='frames before a chunk that warm its temporal chain and are thrown '
                        'away (default: %(default)s)')
    add_method_options(p, inputs=False)
    add_device_options(p)
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    p.add_argument('--debug', action='store_true', help='show tracebacks of errors')
    return p


def main(argv=None, prog=PROG):
    from styletransfer.cli.train import parse
    argv = sys.argv[1:] if argv is None else list(argv)
    args, code = parse(argv, prog, build_parser(prog))
    if args is None:
        return code
    return guarded(prog, args, lambda: _video(args, prog))


def _size(text):
    if text is None:
        return None
    width, sep, height = text.lower().partition('x')
    try:
        return int(width), int(height) if sep else None
    except ValueError:
        raise StyleTransferError('--size %r: expected WxH or W' % text) from None


def _video(args, prog):
    from styletransfer.images import load_image
    from styletransfer.video import io as vio
    threads = device.set_threads(args.threads)
    network, settings, _ = method_objects(args)
    if not args.output.lower().endswith('.mp4'):
        raise StyleTransferError('%s: the output must be an .mp4 file' % args.output)
    if os.path.exists(args.output) and not args.overwrite:
        raise StyleTransferError('%s: exists; pass --overwrite to replace it' % args.output)
    if not os.path.isdir(os.path.dirname(os.path.abspath(args.output))):
        raise StyleTransferError('%s: output folder does not exist'
                                 % os.path.dirname(os.path.abspath(args.output)))
    if args.iterations < 1:
        raise StyleTransferError('--iterations must be at least 1')
    if args.method in ('gatys', 'adain') and not args.style:
        raise StyleTransferError('--method %s needs a style picture: give --style'
                                 % args.method)
    if args.method == 'adain' and not args.decoder:
        raise StyleTransferError('--method adain needs a decoder: give --decoder')
    if args.method == 'fast' and not args.model:
        raise StyleTransferError('--method fast needs a trained network: give --model')
    info = vio.probe(args.input)
    style, notes = load_image(args.style) if args.style else (None, [])
    if args.stage:
        size = (settings.stages[-1].width, settings.stages[-1].height)
    else:
        size = vio.fit_size(info.size, _size(args.size))
        settings = Settings(**dict(settings.to_dict(), stages=[
            Stage(size[0], size[1], args.iterations, args.iterations)]))
    settings.check_network(network)
    default = TEMPORAL_WEIGHT if args.method == 'gatys' else FEED_FORWARD_WEIGHT
    weight = default if args.temporal_weight is None else args.temporal_weight
    if weight < 0 or (args.method != 'gatys' and weight > 1):
        raise StyleTransferError('--temporal-weight must be %s' % (
            '0 or more' if args.method == 'gatys' else 'in 0..1 for a feed-forward method'))
    fast_settings = None
    if args.method != 'gatys':
        import styletransfer as st
        fast_settings = st.FastSettings(style_mix=args.style_mix or (), size=size,
                                        alpha=args.alpha)
    frames_dir = args.frames or os.path.splitext(args.output)[0] + '.frames'
    meta = {'input': os.path.abspath(args.input), 'method': args.method,
            'temporal_weight': weight, 'start': args.start, 'duration': args.duration,
            'size': list(size)}
    if args.method == 'gatys':
        meta.update(style=os.path.abspath(args.style), settings=settings.to_dict(),
                    network=network.to_dict())
    elif args.method == 'fast':
        meta.update(model=os.path.abspath(args.model), fast=fast_settings.to_dict())
    else:
        meta.update(decoder=os.path.abspath(args.decoder), encoder=args.encoder or
                    network.weights, style=os.path.abspath(args.style),
                    fast=fast_settings.to_dict())
    store = vio.FrameStore(frames_dir, meta)
    audio = vio.AudioCopy(args.input, args.start, args.duration)
    ctx, remark = device.resolve_ctx(args.ctx)
    device.check_dtype(network.dtype, ctx)
    for note in notes:
        print('# ' + note)
    if args.workers or args.scheduler:
        return _on_dask(args, prog, info, size, network, settings, fast_settings, style,
                        weight, store, audio, threads)
    if args.method == 'gatys':
        from styletransfer.gatys.stylizer import Stylizer
        from styletransfer.video.stylize import GatysFrames
        stylizer = Stylizer(network, ctx)
        method = GatysFrames(stylizer, settings, {'style': style}, weight)
        what = 'style %s; weights: %s' % (args.style, stylizer.description)
    elif args.method == 'fast':
        import styletransfer as st
        from styletransfer.video.stylize import FeedForwardFrames
        fast = st.FastStylizer(args.model, ctx, network.dtype)
        fast.start(style_free_frame(size), fast_settings)   # checks the style mix and memory
        method = FeedForwardFrames(lambda frame: fast.picture(frame, fast_settings), weight)
        what = fast.description
    else:
        import styletransfer as st
        from styletransfer.video.stylize import FeedForwardFrames
        fast = st.FastStylizer(ctx=ctx, decoder=args.decoder, dtype=network.dtype,
                               encoder=args.encoder or network.weights)
        styles = [(style, 1.0)]       # measured once, kept by the stylizer for every frame
        method = FeedForwardFrames(
            lambda frame: fast.picture(frame, fast_settings, styles), weight)
        what = '%s; style %s' % (fast.description, args.style)
    return _drive(args, prog, info, size, method, what, weight, store, audio, ctx, remark,
                  threads)


def style_free_frame(size):
    """A black frame of `size`, to check a network's settings before the first real frame."""
    import numpy as np
    return np.zeros((size[1], size[0], 3), np.uint8)


def _drive(args, prog, info, size, method, what, weight, store, audio, ctx, remark, threads):
    from tqdm import tqdm
    from styletransfer.video import io as vio
    from styletransfer.video.stylize import stylize_frames
    print('# %s: %dx%d at %s fps%s; frames %dx%d; %s'
          % (args.input, info.width, info.height, info.frame_rate,
             ', with audio' if info.has_audio else '', size[0], size[1], what))
    print('# method %s; context: %s (%s), %d threads; temporal weight %g; frames kept in %s'
          % (args.method, ctx, remark, threads, weight, store.folder))
    expected = _expected_frames(info, args.start, args.duration)
    stopping = []

    def on_signal(signum, frame):
        if stopping and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stopping.append(signum)
        print('\n%s: stopping after this frame (Ctrl-C again to stop at once)' % prog,
              file=sys.stderr, flush=True)
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    frames = vio.read_frames(args.input, args.start, args.duration, size)
    bar = tqdm(total=expected, unit='frame', file=sys.stderr,
               disable=args.no_progress or not sys.stderr.isatty())
    count = 0
    try:
        for event in stylize_frames(frames, method, store, expected or 0,
                                    stop=lambda: bool(stopping)):
            count = event.index + 1
            bar.update(1)
            if not event.kept:
                bar.write('frame %d: %.2f s' % (event.index, event.seconds), file=sys.stdout)
    finally:
        bar.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stopping:
        print('%s: stopped after %d frames, kept in %s; run the same command again to continue'
              % (prog, count, store.folder), file=sys.stderr)
        return EXIT_INTERRUPTED
    written = store.encode(args.output, info.frame_rate, count, audio)
    shutil.rmtree(store.folder)
    print('# wrote %s: %d frames' % (args.output, written))
    return 0


def _on_dask(args, prog, info, size, network, settings, fast_settings, style, weight, store,
             audio, threads):
    from styletransfer.batch import engine, methods
    from styletransfer.video import chunks, io as vio
    if args.chunk < 1 or args.overlap < 0 or args.workers < 0:
        raise StyleTransferError('--chunk must be at least 1, --overlap and --workers 0 or more')
    if args.method == 'gatys':
        model = network
    elif args.method == 'fast':
        model, settings = methods.NetworkModel(os.path.abspath(args.model)), fast_settings
    else:
        encoder = args.encoder or network.weights
        model = methods.AdaINModel(os.path.abspath(args.decoder), encoder if encoder in (
            'zoo', 'random') else os.path.abspath(encoder))
        settings = fast_settings
    spec = methods.Spec(args.method, model, args.ctx, args.threads)
    frames = [f.image for f in vio.read_frames(args.input, args.start, args.duration, size)]
    plan = chunks.plan(len(frames), args.chunk, args.overlap, chunks.scene_cuts(frames))
    print('# %s: %d frames %dx%d in %d chunks; method %s, temporal weight %g; frames kept in %s'
          % (args.input, len(frames), size[0], size[1], len(plan), args.method, weight,
             store.folder))
    if args.scheduler:
        from distributed import Client
        cluster = Client(args.scheduler)
    else:
        cluster = engine.local_cluster(args.workers, args.threads or threads)
    with cluster as client:
        print('# dashboard: %s' % client.dashboard_link)

        def on_chunk(chunk, result):
            print('frames %d-%d: %.1f s on %s' % (chunk.start, chunk.end - 1,
                                                  result['seconds'], result['worker']))
        chunks.run_on_dask(client, frames, plan, spec, settings, style, weight, store,
                           on_chunk)
    written = store.encode(args.output, info.frame_rate, len(frames), audio)
    shutil.rmtree(store.folder)
    print('# wrote %s: %d frames' % (args.output, written))
    return 0


def _expected_frames(info, start, duration):
    """Frames the cut should hold, for the progress bar (None when the file does not say)."""
    total = info.duration
    if total is None:
        return None
    length = max(0.0, total - start) if duration is None else min(duration, total - start)
    return max(0, round(length * info.frame_rate))
