"""The pieces of the book's optimisation: each stage's targets, its starting image, and one
step of Adam (the book's) or L-BFGS on the generated image. The loop that drives them, keeps the
best image and reports progress is the run's (`stylizer.Run`).

Both steppers share one protocol: `step(i, best_total)` evaluates the losses of the image
iteration i starts from, computes its gradient and updates the image; it returns the weighted
[content, style, tv, total] of the evaluated image, a numpy copy of that image when its total is
below `best_total` (else None), the learning rate used (None for L-BFGS), the one set after the
step if it changed, and whether the image moved.
"""
import numpy as np
from mxnet import autograd, gluon, nd

from ..losses import STYLE_LOSSES, Region, gram
from ..vgg.layers import feature_size
from .lbfgs import LBFGS
from .objective import Objective


class GeneratedImage(gluon.Block):
    """Holds the image being optimised as its only Parameter."""

    def __init__(self, shape, **kwargs):
        super().__init__(**kwargs)
        self.weight = self.params.get('weight', shape=shape)

    def forward(self):
        return self.weight.data()


def targets(extractor, normalizer, content_img, style_imgs, width, height, style_scale=1.0,
            style_loss='gram'):
    """Content input and features, and the style targets, at one size (computed once).

    `style_imgs` is one picture, or ((picture, weight), ...) whose targets are mixed with those
    weights. Style pictures are resized to the stage size times `style_scale` (the book:
    exactly the stage size, whatever their aspect). The targets are the Gram matrices (the
    book's), or with another `style_loss` (a losses.STYLE_LOSSES name) that loss's target
    tuple per style layer."""
    content_x = normalizer.preprocess(content_img, width, height)
    contents, _ = extractor.split(extractor(content_x))
    if style_loss == 'gram':
        return content_x, contents, _mixed_grams(extractor, normalizer, style_imgs, width,
                                                 height, style_scale)
    return content_x, contents, _mixed_statistics(extractor, normalizer, style_imgs, width,
                                                  height, style_scale, style_loss)


def _style_maps(extractor, normalizer, style_imgs, width, height, style_scale):
    """(each style picture's style feature maps, its weight)."""
    if not isinstance(style_imgs, (list, tuple)):
        style_imgs = [(style_imgs, 1.0)]
    size = (max(1, round(width * style_scale)), max(1, round(height * style_scale)))
    for picture, weight in style_imgs:
        yield extractor.split(extractor(normalizer.preprocess(picture, *size)))[1], weight


def _mixed_grams(extractor, normalizer, style_imgs, width, height, style_scale):
    grams = None
    for styles, weight in _style_maps(extractor, normalizer, style_imgs, width, height,
                                      style_scale):
        mine = [gram(y) if weight == 1 else gram(y) * weight for y in styles]
        grams = mine if grams is None else [a + b for a, b in zip(grams, mine)]
    return grams


def _mixed_statistics(extractor, normalizer, style_imgs, width, height, style_scale, name):
    """Per style layer, STYLE_LOSSES[name]'s target tuple, mixed linearly over the styles."""
    target = STYLE_LOSSES[name].target
    mixed = None
    for styles, weight in _style_maps(extractor, normalizer, style_imgs, width, height,
                                      style_scale):
        mine = [tuple(a * weight for a in target(y)) for y in styles]
        mixed = mine if mixed is None else [tuple(a + b for a, b in zip(t, u))
                                            for t, u in zip(mixed, mine)]
    return mixed


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


def initial_image(init_kind, init_picture, noise_ratio, seed, normalizer, content_x, width,
                  height):
    """Stage 1's starting image: the content (the book), noise or a given picture, with
    `noise_ratio` of seeded uniform noise blended in."""
    if init_kind == 'content':
        base = content_x
    elif init_kind == 'noise':
        base = None
    else:
        base = normalizer.preprocess(init_picture, width, height)
    ratio = 1.0 if base is None else noise_ratio
    if ratio == 0:
        return base
    rng = np.random.RandomState(seed)
    noise = normalizer.preprocess(rng.uniform(0, 255, (height, width, 3)).astype(np.float32),
                                  width, height)
    return noise if base is None else (1 - ratio) * base + ratio * noise


def hand_over(normalizer, previous, width, height):
    """The next stage's starting image from the previous stage's: postprocessed, times 255,
    resized and normalised (the book's hand-over, without 8-bit rounding)."""
    return normalizer.preprocess(normalizer.postprocess(previous) * 255, width, height)


def _losses_and_gradient(objective, x):
    """Forward and backward for image `x` (its gradient lands in x's grad buffer); returns the
    weighted [content, style, tv, extra terms..., total] as floats."""
    with autograd.record():
        losses = objective(x)
    losses[-1].backward()
    # One sync for all four numbers, while the backward pass is still running.
    return nd.concat(*losses, dim=0).asnumpy().tolist()


def build_objective(extractor, content_targets, style_targets, settings, extra=()):
    """The stage's `objective.Objective`, hybridised (one per stage: its size is fixed);
    `extra` holds (objective.Term, its constants at this size) pairs."""
    objective = Objective(extractor, content_targets, style_targets, settings.content_weight,
                          settings.layer_style_weights(len(extractor.style_layers)),
                          settings.tv_weight, extra,
                          None if settings.style_loss == 'gram' else settings.style_loss)
    objective.hybridize(static_alloc=True, static_shape=True)
    return objective


class AdamSteps:
    """The book's loop: the losses reported for iteration i are those of the image before its
    update, and after the update of iteration i (i > 0, i a multiple of the decay interval) the
    learning rate is multiplied by `lr_decay`. `resume` (the dict `state()` gave) continues
    with the same Adam moments, update count and rate, so the run goes on exactly."""

    def __init__(self, objective, init, stage, lr_decay, ctx, resume=None):
        self.objective, self.stage, self.lr_decay, self.ctx = objective, stage, lr_decay, ctx
        self.image = GeneratedImage(init.shape)
        self.image.initialize(ctx=ctx)
        self.image.weight.set_data(init)
        self.trainer = gluon.Trainer(self.image.collect_params(), 'adam',
                                     {'learning_rate': stage.lr})
        if resume:
            self._restore(resume, ctx)

    def step(self, i, best_total):
        x = self.image()
        values = _losses_and_gradient(self.objective, x)
        best = x.asnumpy() if values[-1] < best_total else None
        lr = self.trainer.learning_rate
        self.trainer.step(1)
        nd.waitall()
        new_lr = None
        if i % self.stage.decay_every == 0 and i != 0:
            new_lr = lr * self.lr_decay
            self.trainer.set_learning_rate(new_lr)
        return values, best, lr, new_lr, True

    @property
    def x(self):
        return self.image.weight.data()

    def state(self):
        """Adam's moments, update count and learning rate, as numpy and numbers."""
        updater = self.trainer._updaters[0]
        if 0 not in updater.states:      # no step taken yet
            return {}
        mean, var = updater.states[0]
        return {'mean': mean.asnumpy(), 'var': var.asnumpy(), 'count': int(self._counts()[0]),
                'lr': float(self.trainer.learning_rate)}

    def _counts(self):
        # MXNet's optimizer counts updates per device (its device_id): on cpu(1) or gpu(1)
        # the count lives in another table than on device 0.
        optimizer = self.trainer._optimizer
        optimizer._set_current_context(self.ctx.device_id)
        return optimizer._index_update_count

    def _restore(self, saved, ctx):
        # Gluon's own save_states/load_states would pickle MXNet objects into the checkpoint;
        # these four values are all Adam keeps for the one parameter there is.
        self.trainer._init_kvstore()
        updater = self.trainer._updaters[0]
        updater.states[0] = (nd.array(saved['mean'], ctx=ctx), nd.array(saved['var'], ctx=ctx))
        updater.states_synced[0] = True
        self._counts()[0] = saved['count']
        optimizer = self.trainer._optimizer
        optimizer.num_update = max(optimizer.num_update, saved['count'])
        self.trainer.set_learning_rate(saved['lr'])


class LBFGSSteps:
    """One L-BFGS iteration per step: the losses reported for iteration i are those of the image
    it starts from; the image stays inside the pixel range. `stage.lr` is unused (the line search
    sets the step). A resumed stage starts with an empty curvature history, so it is not
    step-for-step the uninterrupted run."""

    def __init__(self, objective, init, stage, history, normalizer):
        def evaluate(x):
            x.attach_grad()
            values = _losses_and_gradient(objective, x)
            return values[-1], x.grad.copy(), values
        lower, upper = normalizer.pixel_bounds()
        self.stage = stage
        self.solver = LBFGS(init, evaluate, lower, upper, history=history)

    def step(self, i, best_total):
        values = self.solver.extra
        best = self.solver.x.asnumpy() if values[-1] < best_total else None
        moved = self.solver.step() if i < self.stage.iterations - 1 else True
        nd.waitall()
        return values, best, None, None, moved

    @property
    def x(self):
        return self.solver.x

    def state(self):
        return {}


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
