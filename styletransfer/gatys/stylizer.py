"""The book's method as a library: a `Stylizer` holds the measuring network (built once), and
each `start` makes a `Run` that yields plain events as it optimises and can be stopped, saved
and resumed from any thread.

    stylizer = Stylizer(Network(weights='zoo'), ctx='auto')
    run = stylizer.start(Inputs('photo.jpg', 'painting.jpg'), Settings())
    for event in run:          # Progress after every iteration, StageDone after every stage
        ...
    run.result.picture         # HxWx3 uint8

MXNet 1.x is not thread-safe, so one thread iterates a run; `stop()` and `picture()` may be
called from any other (they touch no MXNet object), `state()` from the iterating thread or
when no thread is iterating.
"""
import math
import time

import numpy as np

from .. import colors, device
from ..driven import Driven
from ..errors import Diverged, StyleTransferError
from ..events import BOOK_TERMS, Progress, Result, StageDone
from ..images import RGB_MEAN, RGB_STD, to_uint8
from ..inputs import Inputs, LoadedInputs
from ..settings import Settings, differences
from ..vgg.network import Network
from .state import RunState

_MEAN = np.array(RGB_MEAN, dtype=np.float32)
_STD = np.array(RGB_STD, dtype=np.float32)


class Stylizer:
    """The measuring network on one device, loaded and built once for any number of runs."""

    def __init__(self, network=None, ctx='auto'):
        from ..images import Normalizer
        self.network = network if network is not None else Network()
        if not isinstance(self.network, Network):
            raise StyleTransferError('network must be a styletransfer.Network', 'network')
        self.ctx, self.ctx_remark = device.resolve_ctx(ctx)
        device.check_dtype(self.network.dtype, self.ctx)
        self.weights = self.network.load_weights()
        self.extractor = self.network.build(self.ctx, self.weights)
        self.normalizer = Normalizer(self.ctx)

    @property
    def description(self):
        """Which weights measure the pictures, e.g. 'random (seed 0), NOT pretrained: ...'."""
        return self.weights.description

    def start(self, inputs, settings=None, resume=None, extra_terms=()):
        """A run of `settings` (default: the book's; with `resume`, the state's) on `inputs`
        (an Inputs, or what its `load` returned). Everything is checked here, before any
        optimisation; `resume` (a RunState) continues where `state()` was taken. `extra_terms`
        (gatys.objective.Term) add weighted losses, reported in Progress.terms by name."""
        if resume is not None:
            if settings is not None and settings != resume.settings:
                raise StyleTransferError('resume: the settings differ from the state\'s in %s'
                                         % ', '.join(differences(settings, resume.settings)),
                                         'settings')
            settings = resume.settings
            if resume.network != self.network:
                raise StyleTransferError('resume: the network differs from the state\'s in %s'
                                         % ', '.join(differences(self.network, resume.network)),
                                         'network')
        settings = settings if settings is not None else Settings()
        settings.check_network(self.network)
        if not isinstance(inputs, LoadedInputs):
            if not isinstance(inputs, Inputs):
                raise StyleTransferError('inputs must be a styletransfer.Inputs', 'inputs')
            inputs = inputs.load(self.network.min_side)
        if not inputs.styles:
            raise StyleTransferError('a style picture is needed (style or style_blend)', 'style')
        if settings.style_loss != 'gram' and inputs.regions:
            raise StyleTransferError('style_loss %s: regions need the Gram loss (masked '
                                     'statistics of the others are not built)'
                                     % settings.style_loss, 'style_loss')
        if settings.style_loss == 'mmd-gauss' and len(inputs.styles) > 1:
            raise StyleTransferError('style_loss mmd-gauss: a blend of styles has no one kernel '
                                     'bandwidth; use another loss or one style', 'style_loss')
        if resume is not None and resume.digests and resume.digests != inputs.digests():
            raise StyleTransferError('resume: the pictures differ from those the state was '
                                     'made with', 'inputs')
        if self.ctx.device_type == 'cpu':   # a GPU's memory is the driver's to report
            from ..resources import check_memory
            check_memory(settings)
        return Run(self, inputs, settings, resume, extra_terms)

    def stylize(self, inputs, settings=None, callback=None, resume=None, extra_terms=()):
        """Run to the end; `callback(run, event)` sees every event. Returns the Result."""
        run = self.start(inputs, settings, resume, extra_terms)
        for event in run:
            if callback is not None:
                callback(run, event)
        return run.result


class Run(Driven):
    """One run: iterate it to run it (once). See the module's docstring for threads."""

    def __init__(self, stylizer, inputs, settings, resume=None, extra_terms=()):
        self.stylizer, self.inputs, self.settings = stylizer, inputs, settings
        self.extra_terms = tuple(extra_terms)
        self._names = BOOK_TERMS + tuple(term.name for term in self.extra_terms)
        self.network = stylizer.network
        self.notes = list(inputs.notes)
        self.stopped = False
        self.result = None
        self.history = list(resume.history) if resume else []
        self.stage_pictures = list(resume.stage_pictures) if resume else []
        self._resume = resume
        self._driven()
        self._position = (resume.stage, resume.next_iteration) if resume else (1, 0)
        self._current = resume.image if resume else None
        self._best = resume.best if resume else None
        self._best_total = resume.best_total if resume else math.inf
        self._steps = None
        self._prepare_pictures()

    # ------------------------------------------------------------------ the public protocol

    @property
    def position(self):
        """(1-based stage, next iteration to run): where the run stands."""
        return self._position

    def picture(self, best=False):
        """The picture so far (HxWx3 uint8, colours restored): the current image, or with
        `best` the lowest-loss image of the current stage; None before the first iteration."""
        x = self._best if best and self._best is not None else self._current
        return None if x is None else self._to_picture(x)

    def state(self):
        """Where the run stands (a RunState): numpy arrays and numbers, picklable."""
        self._check_state_thread()
        stage, next_iteration = self._position
        resume = self._resume
        if self._steps is None and resume is not None and self._position == (
                resume.stage, resume.next_iteration):   # not iterated since it was resumed
            optimizer, best_total = resume.optimizer, resume.best_total
        elif next_iteration > 0 and self._steps is not None:
            optimizer, best_total = self._steps.state(), self._best_total
        else:
            optimizer, best_total = {}, math.inf
        return RunState(self.settings, self.network, stage, next_iteration, self._current,
                        self._best if self._best is not None else self._current, best_total,
                        optimizer, list(self.stage_pictures), list(self.history),
                        self.inputs.digests())

    # ------------------------------------------------------------------------- the loop

    def _run(self):
        import mxnet as mx
        from .optimise import (AdamSteps, LBFGSSteps, Plateau, build_objective, hand_over,
                               initial_image)
        settings, ctx, normalizer = self.settings, self.stylizer.ctx, self.stylizer.normalizer
        stages, resume = settings.stages, self._resume
        previous = None
        for number, stage in enumerate(stages, 1):
            if resume is not None and number < resume.stage:
                continue
            content_x, content_targets, style_targets = self._targets(stage)
            here = resume if resume is not None and number == resume.stage else None
            start, saved = 0, {}
            if here is not None and here.image is not None:
                if here.next_iteration == 0:
                    previous = mx.nd.array(here.image, ctx=ctx)
                else:
                    start, saved = here.next_iteration, here.optimizer
            if start:
                init = mx.nd.array(here.image, ctx=ctx)
            elif previous is None:
                init = initial_image(self.inputs.init_kind, self.inputs.init,
                                     settings.noise_ratio, settings.seed, normalizer, content_x,
                                     stage.width, stage.height)
            else:
                init = hand_over(normalizer, previous, stage.width, stage.height)
            if not start:
                self._best, self._best_total = None, math.inf
            started = time.perf_counter()
            extra = [(term, term.constants(stage.width, stage.height, normalizer))
                     for term in self.extra_terms]
            objective = build_objective(self.stylizer.extractor, content_targets, style_targets,
                                        settings, extra)
            if settings.optimizer == 'lbfgs':
                steps = LBFGSSteps(objective, init, stage, settings.lbfgs_history, normalizer)
            else:
                steps = AdamSteps(objective, init, stage, settings.lr_decay, ctx, saved)
            self._steps, self._position = steps, (number, start)
            plateau = Plateau(settings.stop_rtol, settings.stop_window)
            for i in range(start, stage.iterations):
                values, best, lr, new_lr, moved = steps.step(i, self._best_total)
                total = values[-1]
                if best is not None:
                    self._best, self._best_total = best, total
                self._current = steps.x.asnumpy()
                self._position = (number, i + 1)
                last = i == stage.iterations - 1 or not moved or plateau.reached(total)
                progress = Progress(number, len(stages), i, stage.iterations, stage.width,
                                    stage.height, lr, new_lr, dict(zip(self._names, values)),
                                    total, time.perf_counter() - started, last)
                self.history.append(progress)
                yield progress
                if not math.isfinite(total):
                    raise Diverged(number, i, total, self.picture(best=True)
                                   if self._best is not None else None)
                if last:
                    break
                if self._stop.is_set():
                    return self._finish(stopped=True)
                started = time.perf_counter()
            previous = steps.x
            picture = self._to_picture(self._current)
            self.stage_pictures.append(picture)
            self._position, self._steps = (number + 1, 0), None
            yield StageDone(number, len(stages), stage.width, stage.height, picture)
            if self._stop.is_set() and number < len(stages):
                return self._finish(stopped=True)
        self._finish(stopped=False)

    def _finish(self, stopped):
        self.stopped = stopped
        mid_stage = self._position[1] > 0
        picture = self.picture(best=True) if mid_stage or not self.stage_pictures \
            else self.stage_pictures[-1]
        self.result = Result(picture, list(self.stage_pictures), list(self.history), stopped,
                             self.stylizer.description)

    # ---------------------------------------------------------------- pictures and targets

    def _prepare_pictures(self):
        """The pictures the network sees, after the colour control asked for, and the regions
        as (mask in [0, 1] at the content's size, styles)."""
        loaded, mode = self.inputs, self.settings.preserve_colors
        self._content, self._styles = colors.prepare(mode, loaded.content, loaded.styles)
        self._regions = None
        if loaded.regions:
            height, width = loaded.content.shape[:2]
            regions, covered = [], 0.0
            for mask, style in loaded.regions:
                mask = colors.grey_mask(mask, width, height)
                styles = [] if style is None else colors.prepare(
                    mode, loaded.content, [(style, 1.0)])[1]
                regions.append((mask, styles))
                covered = covered + mask
            regions.append((np.clip(1.0 - covered, 0.0, 1.0), self._styles))
            self._regions = regions

    def _targets(self, stage):
        from .optimise import region_targets, targets
        args = (self.stylizer.extractor, self.stylizer.normalizer, self._content)
        size = (stage.width, stage.height, self.settings.style_scale)
        if self._regions is None:
            return targets(*args, self._styles, *size, self.settings.style_loss)
        return region_targets(*args, self._regions, *size)

    def _to_picture(self, x):
        """A 1x3xHxW network input (numpy) as the picture it shows, colours restored. The same
        float32 operations as images.Normalizer.postprocess, in numpy: no MXNet, any thread."""
        picture = to_uint8(np.clip(x[0].transpose(1, 2, 0) * _STD + _MEAN, 0, 1))
        if self.settings.preserve_colors == 'luminance':
            picture = colors.restore_colors(picture, self.inputs.content)
        return picture


# ------------------------------------------------------------------------------ one call

def _split_options(options):
    """Route keyword options to Network, Settings and Inputs by field name ('seed' goes to
    both the network and the settings)."""
    import dataclasses
    parts = {cls: {} for cls in (Network, Settings, Inputs)}
    names = {cls: {f.name for f in dataclasses.fields(cls)} for cls in parts}
    for key, value in options.items():
        targets = [cls for cls in parts if key in names[cls]]
        if not targets or key in ('content', 'style'):
            raise StyleTransferError('unknown option %r' % key, key)
        for cls in targets:
            parts[cls][key] = value
    return parts[Network], parts[Settings], parts[Inputs]


def stylize(content, style=None, *, callback=None, ctx='auto', **options):
    """The one-liner: style transfer of `content` by `style` (paths or HxWx3 arrays) with the
    book's method; `options` are Settings, Network and Inputs fields by name (the command
    line's options with underscores). Returns the Result; raises Diverged if the loss stops
    being a number, StyleTransferError (naming the field) for bad input, before anything slow.
    """
    network, settings, extra = _split_options(options)
    network, settings = Network(**network), Settings(**settings)
    inputs = Inputs(content, style, **extra)
    settings.check_network(network)
    loaded = inputs.load(network.min_side)
    return Stylizer(network, ctx).stylize(loaded, settings, callback=callback)
