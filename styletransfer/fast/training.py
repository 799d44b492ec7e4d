"""Training a feed-forward network: one loop, whatever is trained.

What is trained, and how its loss is computed, is a *recipe* (fast/train_johnson.py: Johnson
et al.'s TransformerNet, one style or several through conditional instance norm;
fast/train_adain.py: Huang and Belongie's AdaIN decoder, from pairs of content and style
crops). The loop around it is here, once: the data (fast/imagefolder.py),
Adam, data-parallel training over MXNet's distributed key-value store, the events, stopping,
and a state from which training resumes exactly. A `Training` has the shape of the
optimisation's `Run` (gatys/stylizer.py):

    training = Training(JohnsonRecipe([style]), {'content': 'coco/'}, TrainingSettings())
    for event in training:      # Progress after every iteration, Samples every sample_every
        ...
    training.save('mosaic.params')

`stop()` may be called from any thread: the training ends after the current iteration, and
`state()` (from the iterating thread, or when none iterates) gives a TrainingState of plain
numbers and numpy arrays that `Training(..., resume=state)` continues with the same
parameters, Adam moments and update counts, and the same data order, as if never stopped.

A recipe is an object with:
    name                        key in RECIPES (what a checkpoint names)
    terms                       names of the loss terms it reports, the total last
    folders                     names of the picture folders it reads, e.g. ('content',)
    build(ctx, settings, values=None) -> [(name, Parameter)], the trainable ones, in a fixed
                                order; `values` ({name: numpy}) restores every parameter
    parameters() -> {name: Parameter}, everything a state keeps
    network_state() -> {name: NDArray}, the network as its file holds it
    conditions(rng, batch) -> numpy array, what each sample of a batch is trained for (the
                                style of a conditional network), drawn from `rng`
    losses(batch, conditions) -> NDArrays, one per term then the total (1-element each),
                                recorded by autograd; `batch` maps a folder name to its
                                N x 3 x S x S ImageNet-normalised crops
    evaluate(batch, condition) -> the same, without gradients, every sample under `condition`
    sample(pictures) -> [(label, HxWx3 uint8)]: what the network makes of the pictures
    describe() -> (JSON meta, {name: numpy}); the class's restore(meta, arrays) rebuilds it
    save(path, extra) -> the trained network as a file (zoo.save_net, adain.save_decoder)
    title() -> a few words naming what is trained (the style names; 'AdaIN decoder ...')
    summary() -> lines describing the training for a log (after build)

The learning rate is a function of the iteration only (TrainingSettings.learning_rate: lr,
or with lr_decay the inverse-time decay lr / (1 + lr_decay * i) of AdaIN's authors), set
before every update: a resumed training takes the same rates without keeping a schedule's
state.

Scale-out (`kvstore='dist_sync'`): every worker runs this same loop on its own shard of the
folders (by kvstore rank), with batch_size pictures per step; the key-value store sums the
gradients of all workers and each worker applies the same Adam update locally (update_on_kvstore
is off, so the optimiser's state lives in the workers and a checkpoint holds it). The gradient
sum is divided by the number of workers: W workers together train as one with batch
W * batch_size. A stop anywhere is voted through the store as well, so all workers stop after
the same iteration (a worker that carried on alone would wait for the others forever).
"""
import math
import time
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from ..driven import Driven
from ..errors import Diverged, StyleTransferError
from ..events import Progress, Samples, from_json, to_json
from ..settings import non_negative, number
from . import imagefolder

# Recipe name -> 'module:Class' (imported when a checkpoint names it).
RECIPES = {'johnson': 'styletransfer.fast.train_johnson:JohnsonRecipe',
           'adain': 'styletransfer.fast.train_adain:AdaINRecipe'}
# Key of the stop vote in the distributed store: far above any parameter index.
STOP_KEY = 1 << 30


def recipe_class(name):
    import importlib
    if name not in RECIPES:
        raise StyleTransferError('unknown training recipe %r (known: %s)'
                                 % (name, ', '.join(sorted(RECIPES))))
    module, cls = RECIPES[name].split(':')
    return getattr(importlib.import_module(module), cls)


@dataclass(frozen=True)
class TrainingSettings:
    iterations: int = 40000     # pytorch/examples: 2 epochs of COCO 2014 train at batch 4
    batch_size: int = 4         # pictures per step (per worker when distributed)
    image_size: int = 256       # side of the square crops
    lr: float = 1e-3            # Adam's, at iteration 0
    seed: int = 0               # network initialisation, data order, crops, conditions
    sample_every: int = 0       # a Samples event every this many iterations (0: never)
    lr_decay: float = 0.0       # iteration i updates with lr / (1 + lr_decay * i); 0: constant
    load_size: int = 0          # shorter side pictures are resized to before cropping (0: as
                                # image_size, the whole shorter side is cropped)

    def __post_init__(self):
        for f in fields(self):
            kind = float if f.name in ('lr', 'lr_decay') else int
            object.__setattr__(self, f.name, number(getattr(self, f.name), f.name, kind))
        for name, low in (('iterations', 1), ('batch_size', 1), ('image_size', 4),
                          ('sample_every', 0), ('seed', 0), ('load_size', 0)):
            if getattr(self, name) < low:
                raise StyleTransferError('%s must be at least %d, not %d'
                                         % (name, low, getattr(self, name)), name)
        if self.image_size % 4:
            # two stride-2 convolutions and two x2 upsamplings give back the size only then
            raise StyleTransferError('image_size must be a multiple of 4, not %d'
                                     % self.image_size, 'image_size')
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise StyleTransferError('lr must be a positive number, not %r' % self.lr, 'lr')
        non_negative(self.lr_decay, 'lr_decay')
        if self.load_size and self.load_size < self.image_size:
            raise StyleTransferError('load_size %d is smaller than the %d-pixel crops (0 '
                                     'resizes to image_size)' % (self.load_size,
                                                                 self.image_size), 'load_size')

    def learning_rate(self, iteration):
        """The rate of iteration `iteration`'s update (0-based): lr / (1 + lr_decay * i), as
        AdaIN's authors' adjust_learning_rate; exactly lr when lr_decay is 0."""
        return self.lr / (1.0 + self.lr_decay * iteration)

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        return cls(**d)


# Settings a resumed training may change: how long it runs and how often it shows pictures.
RESUMABLE_CHANGES = ('iterations', 'sample_every')


@dataclass(eq=False)
class TrainingState:
    recipe: str
    recipe_meta: dict           # the recipe's describe(): JSON
    recipe_arrays: dict         # ... and its arrays (style pictures)
    settings: TrainingSettings
    iteration: int              # the next iteration to run
    params: dict                # {name: numpy}: every parameter of the trained network
    optimizer: dict             # {name: {'mean', 'var', 'count'}} of the trainable ones
    lr: float
    data: dict                  # folder name -> digest of its file list
    workers: int = 1
    broken: list = field(default_factory=list)      # [(relative path, reason)] skipped
    history: list = field(default_factory=list)     # every Progress so far

    kind = 'train-net'

    def to_parts(self):
        meta = {'recipe': self.recipe, 'recipe_meta': self.recipe_meta,
                'settings': self.settings.to_dict(), 'iteration': self.iteration,
                'optimizer': {name: {'count': s['count']} for name, s in self.optimizer.items()},
                'lr': self.lr, 'data': self.data, 'workers': self.workers,
                'broken': [list(b) for b in self.broken],
                'history': [to_json(p) for p in self.history]}
        arrays = {'param:' + k: v for k, v in self.params.items()}
        for name, s in self.optimizer.items():
            arrays['mean:' + name], arrays['var:' + name] = s['mean'], s['var']
        arrays.update({'recipe:' + k: v for k, v in self.recipe_arrays.items()})
        return meta, arrays

    @classmethod
    def from_parts(cls, meta, arrays):
        def under(prefix):
            return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
        optimizer = {name: {'count': int(s['count']), 'mean': arrays['mean:' + name],
                            'var': arrays['var:' + name]}
                     for name, s in meta['optimizer'].items()}
        return cls(meta['recipe'], meta['recipe_meta'], under('recipe:'),
                   TrainingSettings.from_dict(meta['settings']), int(meta['iteration']),
                   under('param:'), optimizer, float(meta['lr']), dict(meta['data']),
                   int(meta['workers']), [tuple(b) for b in meta['broken']],
                   [from_json(p) for p in meta['history']])

    def make_recipe(self):
        return recipe_class(self.recipe).restore(self.recipe_meta, self.recipe_arrays)


def network_digest(arrays):
    """sha256 over {name: array}: the names in sorted order, each followed by its array's
    float32 bytes (C order)."""
    import hashlib
    h = hashlib.sha256()
    for name in sorted(arrays):
        h.update(name.encode('utf-8'))
        h.update(np.ascontiguousarray(arrays[name], dtype=np.float32).tobytes())
    return h.hexdigest()


def imagenet_batch(pictures, ctx):
    """N x S x S x 3 uint8 (numpy) -> N x 3 x S x S ImageNet-normalised NDArray on `ctx`."""
    from mxnet import nd
    from ..images import RGB_MEAN, RGB_STD
    mean = nd.array(RGB_MEAN, ctx=ctx).reshape((1, 3, 1, 1))
    std = nd.array(RGB_STD, ctx=ctx).reshape((1, 3, 1, 1))
    x = nd.array(pictures, ctx=ctx, dtype='uint8').astype('float32') / 255
    return nd.broadcast_div(nd.broadcast_sub(x.transpose((0, 3, 1, 2)), mean), std)


def _kvstore(spec):
    """(KVStore or None, rank, workers)."""
    if spec is None:
        return None, 0, 1
    import mxnet as mx
    if isinstance(spec, str):
        if spec != 'dist_sync':
            raise StyleTransferError('kvstore must be dist_sync (or None), not %r' % spec,
                                     'kvstore')
        try:
            spec = mx.kv.create(spec)
        except mx.base.MXNetError as e:
            raise StyleTransferError('cannot join the distributed key-value store (are '
                                     'DMLC_ROLE, DMLC_PS_ROOT_URI/PORT and DMLC_NUM_SERVER/WORKER '
                                     'set?): %s' % str(e).splitlines()[0], 'kvstore') from None
    return spec, spec.rank, spec.num_workers


class Training(Driven):
    """One training of `recipe` on the pictures of `folders` ({name: path}, one per name in
    recipe.folders). Everything is checked and built here, before the first iteration.

    samples: pictures (HxWx3 uint8) shown through the network in a Samples event every
    settings.sample_every iterations; exclude: paths left out of the folders (held-out
    pictures); loader_workers: threads decoding pictures ahead of use (0: in this thread);
    kvstore: None or 'dist_sync' (or an mx KVStore); resume: a TrainingState (then `recipe` may
    be None and `settings` may only differ in RESUMABLE_CHANGES). A resumed training repeats
    the uninterrupted one exactly on the same device, threads and number of workers (other
    thread counts can change float rounding, other worker counts the shards)."""

    def __init__(self, recipe, folders, settings=None, ctx='cpu', samples=(), exclude=(),
                 loader_workers=0, kvstore=None, resume=None):
        from .. import device
        if resume is not None:
            settings = self._resumed_settings(settings, resume)
            recipe = recipe if recipe is not None else resume.make_recipe()
        self.settings = settings = settings if settings is not None else TrainingSettings()
        if not isinstance(settings, TrainingSettings):
            raise StyleTransferError('settings must be a TrainingSettings', 'settings')
        if recipe is None:
            raise StyleTransferError('a recipe is needed (or resume)', 'recipe')
        self.recipe = recipe
        if set(folders) != set(recipe.folders):
            raise StyleTransferError('the %s recipe reads folders %s, given %s'
                                     % (recipe.name, ', '.join(recipe.folders),
                                        ', '.join(sorted(folders)) or 'none'), 'folders')
        self.ctx, self.ctx_remark = device.resolve_ctx(ctx)
        self.kv, self.rank, self.workers = _kvstore(kvstore)
        self.images = {name: imagefolder.ImageFolder(folders[name], exclude, self.rank,
                                                     self.workers, name + '_dir')
                       for name in recipe.folders}
        data = {name: images.digest() for name, images in self.images.items()}
        if resume is not None and resume.data != data:
            changed = [folders[n] for n in data if resume.data.get(n) != data[n]]
            raise StyleTransferError('resume: the files in %s are not those the state was '
                                     'trained on' % ', '.join(changed), 'folders')
        self.data_digests = data
        self.loader_workers = int(loader_workers)
        self.samples = [np.asarray(p, dtype=np.uint8) for p in samples]
        self.trainable = recipe.build(self.ctx, settings, resume.params if resume else None)
        self._trainer = self._make_trainer(resume)
        self.iteration = resume.iteration if resume else 0
        self.history = list(resume.history) if resume else []
        self.broken = list(resume.broken) if resume else []
        self.stopped = False
        self._driven()

    @staticmethod
    def _resumed_settings(settings, resume):
        if settings is None:
            return resume.settings
        changed = [f.name for f in fields(settings)
                   if getattr(settings, f.name) != getattr(resume.settings, f.name)
                   and f.name not in RESUMABLE_CHANGES]
        if changed:
            raise StyleTransferError('resume: the settings differ from the state\'s in %s'
                                     % ', '.join(changed), changed[0])
        return settings

    # ------------------------------------------------------------------------- optimiser

    def _make_trainer(self, resume):
        from mxnet import gluon
        params = [param for _, param in self.trainable]
        options = {'learning_rate': self.settings.learning_rate(resume.iteration if resume
                                                                else 0)}
        if self.kv is None:
            trainer = gluon.Trainer(params, 'adam', options)
        else:
            # The store only sums gradients; each worker updates its own copy the same way.
            trainer = gluon.Trainer(params, 'adam', options, kvstore=self.kv,
                                    update_on_kvstore=False)
            # Gluon would put the parameters into the store (rank 0's) and pull them back at
            # the first step, as engine operations that nothing orders before the gradients
            # it pushes to the same keys: a worker could pull a key after both workers' first
            # gradients had replaced the parameter there, and train on from a gradient sum
            # (seen: the last layer's bias, the last key, now and then). Done and waited for
            # here, before any gradient exists.
            from mxnet import nd
            trainer._init_kvstore()
            trainer._init_params()
            nd.waitall()
        if resume is not None:
            self._restore_adam(trainer, resume.optimizer)
        return trainer

    def _counts(self, trainer):
        # MXNet's optimiser counts updates per device id (cpu(1) keeps another table than
        # cpu(0)); Adam's bias correction reads that count.
        optimizer = trainer._optimizer
        optimizer._set_current_context(self.ctx.device_id)
        return optimizer._index_update_count

    def _restore_adam(self, trainer, saved):
        # Gluon's save_states pickles MXNet objects; the moments and counts are all Adam keeps.
        from mxnet import nd
        if not trainer._kv_initialized:
            trainer._init_kvstore()
        updater = trainer._updaters[0]
        counts = self._counts(trainer)
        for index, (name, _) in enumerate(self.trainable):
            if name not in saved:
                continue
            s = saved[name]
            updater.states[index] = (nd.array(s['mean'], ctx=self.ctx),
                                     nd.array(s['var'], ctx=self.ctx))
            updater.states_synced[index] = True
            counts[index] = s['count']
            trainer._optimizer.num_update = max(trainer._optimizer.num_update, s['count'])

    def _adam_state(self):
        updater = self._trainer._updaters[0]
        counts = self._counts(self._trainer)
        saved = {}
        for index, (name, _) in enumerate(self.trainable):
            if index in updater.states:
                mean, var = updater.states[index]
                saved[name] = {'mean': mean.asnumpy(), 'var': var.asnumpy(),
                               'count': int(counts[index])}
        return saved

    # ------------------------------------------------------------------ the public protocol

    @property
    def finished(self):
        return self.iteration >= self.settings.iterations

    def state(self):
        """Where the training stands: a TrainingState (numbers and numpy arrays)."""
        self._check_state_thread()
        meta, arrays = self.recipe.describe()
        params = {name: p.data(self.ctx).asnumpy()
                  for name, p in self.recipe.parameters().items()}
        return TrainingState(self.recipe.name, meta, arrays, self.settings, self.iteration,
                             params, self._adam_state(), float(self._trainer.learning_rate),
                             dict(self.data_digests), self.workers, list(self.broken),
                             list(self.history))

    def save(self, path, extra=None):
        """The trained network as a file (for the Johnson recipe: zoo.save_net's .params)."""
        return self.recipe.save(path, extra)

    def digest(self):
        """`network_digest` of the network as saved (recipe.network_state()): the workers of
        a distributed training hold the same network exactly when their digests agree."""
        return network_digest({k: v.asnumpy() for k, v in self.recipe.network_state().items()})

    def evaluate(self, pictures, condition=None):
        """The loss terms (dict, plus 'total') of HxWx3 uint8 `pictures` under one
        `condition` (for Johnson: a style index; AdaIN has none), averaged over the pictures,
        without training (in chunks of batch_size). `pictures`: a list, given as the recipe's
        first folder, or {folder name: list} for a recipe that reads several (AdaIN: the
        k-th content picture paired with the k-th style picture). Each picture is resized to
        load_size and centre-cropped to image_size, as training crops it."""
        s = self.settings
        if not isinstance(pictures, dict):
            pictures = {self.recipe.folders[0]: pictures}
        if set(pictures) != set(self.recipe.folders):
            raise StyleTransferError('evaluate: the %s recipe needs pictures for %s'
                                     % (self.recipe.name, ', '.join(self.recipe.folders)),
                                     'pictures')
        crops = {name: np.stack([imagefolder.centre_crop(np.asarray(p, np.uint8), s.image_size,
                                                         s.load_size) for p in group])
                 for name, group in pictures.items()}
        count = {len(c) for c in crops.values()}
        if len(count) != 1:
            raise StyleTransferError('evaluate: as many pictures are needed in each folder '
                                     '(paired by position)', 'pictures')
        count, sums = count.pop(), 0
        for start in range(0, count, s.batch_size):
            chunk = {name: c[start:start + s.batch_size] for name, c in crops.items()}
            values = self.recipe.evaluate(self._to_input(chunk), condition)
            # the terms are means over the chunk: weight each chunk by its pictures
            n = len(next(iter(chunk.values())))
            sums = sums + np.array([float(v.asscalar()) for v in values]) * n
        return dict(zip(self.recipe.terms, sums / count))

    # ------------------------------------------------------------------------- the loop

    def _to_input(self, pictures):
        return {name: imagenet_batch(batch, self.ctx) for name, batch in pictures.items()}

    def _streams(self, start):
        s = self.settings
        return {name: imagefolder.batches(images, s.image_size, s.batch_size,
                                          s.seed, start, s.iterations, self.loader_workers, k,
                                          s.load_size or None)
                for k, (name, images) in enumerate(self.images.items())}

    def _vote(self, stop, diverged):
        """(any worker asked to stop, any worker's loss is not finite): summed through the
        store when distributed, so that every worker leaves after the same iteration."""
        if self.kv is None:
            return stop, diverged
        from mxnet import nd
        if not getattr(self, '_vote_ready', False):
            self.kv.init(STOP_KEY, nd.zeros((2,)))
            self._vote_ready = True
        vote = nd.array([float(stop), float(diverged)])
        self.kv.pushpull(STOP_KEY, vote, out=vote)
        stop, diverged = vote.asnumpy()
        return stop > 0, diverged > 0

    def _run(self):
        from mxnet import autograd
        s = self.settings
        if self.finished:
            return
        streams = self._streams(self.iteration)
        started = time.perf_counter()
        for i in range(self.iteration, s.iterations):
            pictures = {}
            for name, stream in streams.items():
                pictures[name], skipped = next(stream)
                self.broken.extend(b for b in skipped if b not in self.broken)
            batch = self._to_input(pictures)
            rng = np.random.default_rng([s.seed, imagefolder.CONDITION, self.rank, i])
            conditions = self.recipe.conditions(rng, s.batch_size)
            with autograd.record():
                values = self.recipe.losses(batch, conditions)
            values[-1].backward()
            lr = s.learning_rate(i)
            self._trainer.set_learning_rate(lr)
            # the losses are means over the batch; the store sums the workers' gradients
            self._trainer.step(self.workers)
            numbers = [float(v.asscalar()) for v in values]
            self.iteration = i + 1
            last = i == s.iterations - 1
            total = numbers[-1]
            progress = Progress(1, 1, i, s.iterations, s.image_size, s.image_size, lr, None,
                                dict(zip(self.recipe.terms[:-1], numbers[:-1])), total,
                                time.perf_counter() - started, last)
            self.history.append(progress)
            yield progress
            # after the events, as a Run does: a stop asked while they were handled counts
            stop, diverged = self._vote(self._stop.is_set(), not math.isfinite(total))
            if diverged:
                raise Diverged(1, i, total)
            if self.samples and s.sample_every and ((i + 1) % s.sample_every == 0 or last):
                labels, made = zip(*self.recipe.sample(self.samples))
                yield Samples(i, list(labels), list(made))
            if stop and not last:
                self.stopped = True
                return
            started = time.perf_counter()
