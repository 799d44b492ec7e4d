"""Checkpoints: enough of a run to continue it exactly where it stopped.

A checkpoint is one zip file written atomically: `meta.json` (format version, configuration,
where the run stands, the log so far), `arrays.params` (the generated image, the best image of
the stage and the finished stages' pictures, saved by MXNet) and `trainer.states` (Gluon's Adam
state: moments and update count). The trainer state is MXNet's own pickle, so resume only
checkpoints you made.
"""
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field

from .config import Config, Stage
from .errors import StyleTransferError
from .files import atomic_path

FORMAT = 'styletransfer-checkpoint-1'


@dataclass
class Checkpoint:
    config: Config
    stage: int              # 1-based stage to continue
    next_iteration: int     # first iteration still to run in that stage
    image: object           # 1x3xHxW NDArray: the generated image after the last finished step
    best: object            # 1x3xHxW NDArray: lowest-loss image of this stage so far
    best_total: float
    trainer_states: bytes   # Gluon Trainer.save_states content
    stage_pictures: list = field(default_factory=list)   # HxWx3 uint8 numpy, finished stages
    extra: dict = field(default_factory=dict)            # caller's data (log, history, paths)


def save(path, ckpt):
    import mxnet as mx
    meta = {'format': FORMAT, 'config': ckpt.config.to_dict(), 'stage': ckpt.stage,
            'next_iteration': ckpt.next_iteration, 'best_total': ckpt.best_total,
            'stages_done': len(ckpt.stage_pictures), 'extra': ckpt.extra}
    arrays = {'image': ckpt.image.as_in_context(mx.cpu()),
              'best': ckpt.best.as_in_context(mx.cpu())}
    for k, picture in enumerate(ckpt.stage_pictures, 1):
        arrays['stage%d' % k] = mx.nd.array(picture, dtype='uint8')
    with tempfile.TemporaryDirectory() as folder:
        params = os.path.join(folder, 'arrays.params')
        mx.nd.save(params, arrays)
        with atomic_path(path) as tmp:
            with zipfile.ZipFile(tmp, 'w', zipfile.ZIP_STORED) as z:
                z.writestr('meta.json', json.dumps(meta, allow_nan=True))
                z.write(params, 'arrays.params')
                z.writestr('trainer.states', ckpt.trainer_states)


def load(path, ctx=None):
    """Read a checkpoint; arrays land on `ctx` (default: the CPU). Any problem is a
    StyleTransferError."""
    import mxnet as mx
    ctx = ctx or mx.cpu()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise StyleTransferError('%s: checkpoint not found' % path)
    try:
        with zipfile.ZipFile(path) as z:
            meta = json.loads(z.read('meta.json'))
            if meta.get('format') != FORMAT:
                raise StyleTransferError('%s: not a checkpoint of this tool (format %r)'
                                         % (path, meta.get('format')))
            states = z.read('trainer.states')
            with tempfile.TemporaryDirectory() as folder:
                params = os.path.join(folder, 'arrays.params')
                with open(params, 'wb') as f:
                    f.write(z.read('arrays.params'))
                arrays = mx.nd.load(params)
    except StyleTransferError:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, mx.base.MXNetError) as e:
        raise StyleTransferError('%s: damaged or not a checkpoint (%s)'
                                 % (path, str(e).splitlines()[0] if str(e) else type(e).__name__)
                                 ) from e
    raw = dict(meta['config'])
    raw['stages'] = tuple(Stage(**s) for s in raw['stages'])
    for key in ('content_layers', 'style_layers'):
        raw[key] = tuple(raw[key])
    config = Config(**raw)
    pictures = [arrays['stage%d' % k].asnumpy() for k in range(1, meta['stages_done'] + 1)]
    return Checkpoint(config, meta['stage'], meta['next_iteration'],
                      arrays['image'].as_in_context(ctx), arrays['best'].as_in_context(ctx),
                      meta['best_total'], states, pictures, meta.get('extra', {}))


def trainer_states(trainer):
    """Gluon Trainer state as bytes (Trainer only saves to a file)."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, 'trainer.states')
        trainer.save_states(path)
        with open(path, 'rb') as f:
            return f.read()


def restore_trainer(trainer, states):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, 'trainer.states')
        with open(path, 'wb') as f:
            f.write(states)
        trainer.load_states(path)
