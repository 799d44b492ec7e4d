"""The optimisation: one stage of Adam (the book's) or L-BFGS on the generated image, then the
coarse-to-fine driver.

Both are generators: they yield a `Progress` after every iteration and a `StageEnd` after every
stage, and leave printing, saving and stopping to the caller.
"""
import time

import numpy as np
from mxnet import autograd, gluon, nd

from ..checkpoint import restore_trainer
from .lbfgs import LBFGS
from ..vgg.layers import feature_size
from ..losses import Region, gram
from .objective import Objective
from ..progress import Progress, StageEnd


class GeneratedImage(gluon.Block):
    """Holds the image being optimised as its only Parameter."""

    def __init__(self, shape, **kwargs):
        super().__init__(**kwargs)
        self.weight = self.params.get('weight', shape=shape)

    def forward(self):
        return self.weight.data()


def targets(extractor, normalizer, content_img, style_imgs, width, height, style_scale=1.0):
    """Content input and features, and the style Gram matrices, at one size (computed once).

    `style_imgs` is one picture, or ((picture, weight), ...) whose Gram matrices are mixed with
    those weights. Style pictures are resized to the stage size times `style_scale` (the book:
    exactly the stage size, whatever their aspect)."""
    content_x = normalizer.preprocess(content_img, width, height)
    contents, _ = extractor.split(extractor(content_x))
    return content_x, contents, _mixed_grams(extractor, normalizer, style_imgs, width, height,
                                             style_scale)


def _mixed_grams(extractor, normalizer, style_imgs, width, height, style_scale):
    if not isinstance(style_imgs, (list, tuple)):
        style_imgs = [(style_imgs, 1.0)]
    size = (max(1, round(width * style_scale)), max(1, round(height * style_scale)))
    grams = None
    for picture, weight in style_imgs:
        _, styles = extractor.split(extractor(normalizer.preprocess(picture, *size)))
        mine = [gram(y) if weight == 1 else gram(y) * weight for y in styles]
        grams = mine if grams is None else [a + b for a, b in zip(grams, mine)]
    return grams


def region_targets(extractor, normalizer, content_img, regions, width, height,
                   style_scale=1.0):
    """`targets` for a run with masks. `regions` is ((mask, styles), ...): mask an HxW float
    array in [0, 1] (any size: it is resized to each style layer), styles as for `targets`
    (empty for a region without style). Returns the content input and features and one
    losses.Region per region with a style."""
    content_x, contents, _ = targets(extractor, normalizer, content_img, [], width, height)
    out = []
    for mask, styles in regions:
        if not styles:
            continue
        grams = _mixed_grams(extractor, normalizer, styles, width, height, style_scale)
        masks = []
        for layer in extractor.style_layers:
            small = normalizer.resize_mask(mask, *feature_size(layer, width, height))
            masks.append((small, max(float(small.sum().asscalar()), 1e-6)))
        out.append(Region(grams, masks))
    return content_x, contents, out


def initial_image(config, normalizer, content_x, init_img, width, height):
    """Stage 1's starting image: the content (the book), noise or a given picture, with
    `config.noise_ratio` of seeded uniform noise blended in."""
    if config.init == 'content':
        base = content_x
    elif config.init == 'noise':
        base = None
    else:
        base = normalizer.preprocess(init_img, width, height)
    ratio = 1.0 if base is None else config.noise_ratio
    if ratio == 0:
        return base
    rng = np.random.RandomState(config.seed)
    noise = normalizer.preprocess(rng.uniform(0, 255, (height, width, 3)).astype(np.float32),
                                  width, height)
    return noise if base is None else (1 - ratio) * base + ratio * noise


def _losses_and_gradient(objective, x):
    """Forward and backward for image `x` (its gradient lands in x's grad buffer); returns the
    weighted [content, style, tv, total] as floats."""
    with autograd.record():
        losses = objective(x)
    losses[-1].backward()
    # One sync for all four numbers, while the backward pass is still running.
    return nd.concat(*losses, dim=0).asnumpy().tolist()


def build_objective(extractor, content_targets, style_grams, config):
    """The stage's `objective.Objective`, hybridised (one per stage: its size is fixed)."""
    objective = Objective(extractor, content_targets, style_grams, config.content_weight,
                          config.layer_style_weights, config.tv_weight)
    objective.hybridize(static_alloc=True, static_shape=True)
    return objective


def optimise_stage(objective, init, stage, config, ctx, number=1, count=1, resume=None):
    """Run one stage's iterations from `init` (1x3xHxW) on `objective` (see `build_objective`);
    yields Progress per iteration.

    Follows the book's loop: the losses reported for iteration i are those of the image before
    its update, and after the update of iteration i (i > 0, i a multiple of the decay interval)
    the learning rate is multiplied by `config.lr_decay`. With `resume` (a Checkpoint of this
    stage) it continues from the checkpoint's image, Adam state and iteration instead.
    """
    image = GeneratedImage(init.shape)
    image.initialize(ctx=ctx)
    image.weight.set_data(init)
    trainer = gluon.Trainer(image.collect_params(), 'adam', {'learning_rate': stage.lr})
    best, best_total, start = None, float('inf'), 0
    if resume is not None:
        image.weight.set_data(resume.image)
        restore_trainer(trainer, resume.trainer_states)
        best, best_total, start = resume.best, resume.best_total, resume.next_iteration
    plateau = Plateau(config.stop_rtol, config.stop_window)
    for i in range(start, stage.iterations):
        started = time.perf_counter()
        x = image()
        content, style, tv, total = _losses_and_gradient(objective, x)
        if total < best_total:
            best, best_total = x.copy(), total
        lr = trainer.learning_rate
        trainer.step(1)
        nd.waitall()
        new_lr = None
        if i % stage.decay_every == 0 and i != 0:
            new_lr = lr * config.lr_decay
            trainer.set_learning_rate(new_lr)
        last = i == stage.iterations - 1 or plateau.reached(total)
        yield Progress(number, count, i, stage.iterations, lr, content, style, tv, total,
                       time.perf_counter() - started, stage.width, stage.height, new_lr,
                       image.weight.data(), best, trainer, last)
        if last:
            return


def optimise_stage_lbfgs(objective, init, stage, config, ctx, normalizer, number=1, count=1,
                         resume=None):
    """One stage of L-BFGS from `init`; yields Progress per iteration like `optimise_stage`.

    The losses reported for iteration i are those of the image the iteration starts from; the
    image is kept inside the pixel range. `stage.lr` is unused (the line search sets the step).
    A resumed stage continues from the checkpoint's image and iteration with an empty
    curvature history, so it is not step-for-step the uninterrupted run.
    """
    def evaluate(x):
        x.attach_grad()
        values = _losses_and_gradient(objective, x)
        return values[-1], x.grad.copy(), values

    lower, upper = normalizer.pixel_bounds()
    plateau = Plateau(config.stop_rtol, config.stop_window)
    started = time.perf_counter()
    best, best_total, start = None, float('inf'), 0
    if resume is not None:
        init, best, best_total, start = (resume.image, resume.best, resume.best_total,
                                         resume.next_iteration)
    solver = LBFGS(init, evaluate, lower, upper, history=config.lbfgs_history)
    for i in range(start, stage.iterations):
        content, style, tv, total = solver.extra
        if total < best_total:
            best, best_total = solver.x.copy(), total
        moved = solver.step() if i < stage.iterations - 1 else True
        nd.waitall()
        last = i == stage.iterations - 1 or not moved or plateau.reached(total)
        yield Progress(number, count, i, stage.iterations, 0.0, content, style, tv, total,
                       time.perf_counter() - started, stage.width, stage.height, None,
                       solver.x, best, None, last)
        started = time.perf_counter()
        if last:
            return


class Plateau:
    """Stop rule: the total loss fell by less than `rtol` (relative) over `window` iterations.
    rtol 0 never stops."""

    def __init__(self, rtol, window):
        self.rtol, self.window, self.totals = rtol, window, []

    def reached(self, total):
        self.totals.append(total)
        if self.rtol <= 0 or len(self.totals) <= self.window:
            return False
        before = self.totals[-1 - self.window]
        return before - total <= self.rtol * abs(before)


def transfer(extractor, normalizer, content_img, style_img, config, ctx, resume=None,
             init_img=None, regions=None):
    """All stages of `config`; each starts from the previous result resized to its own size
    (postprocessed, times 255, preprocessed: the book's hand-over, without 8-bit rounding) and
    uses targets recomputed at its size. Yields Progress and StageEnd records.

    With `resume` (a Checkpoint), the stages before the checkpoint's are skipped and its stage
    continues from the checkpoint (a checkpoint taken between stages holds the finished stage's
    image, which is handed over as usual). `style_img` is one picture or ((picture, weight),
    ...); `init_img` is the picture of `config.init` when that is a path; `regions` replaces
    `style_img` in a run with masks (see `region_targets`)."""
    previous = None
    for number, stage in enumerate(config.stages, 1):
        if resume is not None and number < resume.stage:
            continue
        if regions is None:
            content_x, content_targets, style_grams = targets(
                extractor, normalizer, content_img, style_img, stage.width, stage.height,
                config.style_scale)
        else:
            content_x, content_targets, style_grams = region_targets(
                extractor, normalizer, content_img, regions, stage.width, stage.height,
                config.style_scale)
        here = resume if resume is not None and number == resume.stage else None
        if here is not None and here.next_iteration == 0:
            previous, here = here.image, None
        if previous is None:
            init = initial_image(config, normalizer, content_x, init_img, stage.width,
                                 stage.height)
        else:
            init = normalizer.preprocess(normalizer.postprocess(previous) * 255,
                                         stage.width, stage.height)
        objective = build_objective(extractor, content_targets, style_grams, config)
        if config.optimizer == 'lbfgs':
            steps = optimise_stage_lbfgs(objective, init, stage, config, ctx, normalizer,
                                         number, len(config.stages), here)
        else:
            steps = optimise_stage(objective, init, stage, config, ctx, number,
                                   len(config.stages), here)
        progress = None
        for progress in steps:
            yield progress
        previous = progress.image
        yield StageEnd(number, len(config.stages), normalizer.postprocess(previous), previous)
