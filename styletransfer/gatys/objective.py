"""The quantity the optimisers minimise: the extractor and the weighted losses traced into one
hybridised graph, image -> (content, style, tv, total).

Run as separate NDArray calls after the network, the losses cost about 40% of a step at
450x300: every style feature map left the network's graph, was converted out of oneDNN's
blocked layout, and its gradient came back through half a dozen small operators. Inside the
graph MXNet plans their memory with the network's and frees what it can as it goes.
"""
from dataclasses import dataclass
from typing import Callable

from mxnet import gluon

from ..losses import STYLE_LOSSES, Region, compute_losses
from ..vgg import layers
from ..vgg.layers import feature_size


@dataclass(frozen=True)
class Term:
    """A weighted loss term beside the book's three, e.g. the video's temporal loss.

    `loss(x, *constants, F=F, size=N)` is the unweighted term for the 1x3xHxW image x (N = its
    number of elements, which Symbols do not carry), shape (1,) or a scalar; `constants(width,
    height, normalizer)` gives its constant arrays at a stage's size, on the run's context."""
    name: str
    weight: float
    loss: Callable
    constants: Callable


class Objective(gluon.HybridBlock):
    """`objective(x)` for a 1x3xHxW image whose size is fixed at the first call: the weighted
    losses (content, style, tv, each extra term's, and their total), each of shape (1,). Its
    only Parameters are the extractor's (frozen), and the targets are constant inputs, so a
    backward pass computes the image's gradient alone.

    `style_targets` is a list of Gram matrices (one per style layer) or of `losses.Region`s, as
    `losses.compute_losses` takes them, or with `style_loss` that loss's target tuples. A new
    size needs a new Objective (it is cheap: the extractor's parameters are shared, not
    copied)."""

    def __init__(self, extractor, content_targets, style_targets, content_weight,
                 style_weight, tv_weight, extra=(), style_loss=None, **kwargs):
        super().__init__(**kwargs)
        self.extractor = extractor
        # A losses.STYLE_LOSSES name other than the book's Gram loss: style_targets then holds
        # that loss's target tuple per style layer.
        self.style_loss = STYLE_LOSSES[style_loss] if style_loss else None
        # ((Term, [its constant arrays at this size]), ...): inputs after the targets
        self.extra = [(term, list(arrays)) for term, arrays in extra]
        self.weights = content_weight, style_weight, tv_weight
        self.regions = bool(style_targets) and isinstance(style_targets[0], Region)
        # Arrays are passed to the graph as inputs, in this order; the areas of masks are
        # numbers and stay in the graph as constants.
        self.constants = list(content_targets)
        self.content_sizes = [target.size for target in content_targets]
        self.channels = [layers.channels(layer) for layer in extractor.style_layers]
        if self.style_loss is not None:
            self.target_sizes = [len(t) for t in style_targets]
            self.constants += [a for t in style_targets for a in t]
        elif self.regions:
            self.areas = [[area for _, area in region.masks] for region in style_targets]
            for region in style_targets:
                self.constants += list(region.grams) + [mask for mask, _ in region.masks]
        else:
            self.constants += list(style_targets)
        self.n_targets = len(self.constants)
        for _, arrays in self.extra:
            self.constants += arrays
        self.shapes = None

    def forward(self, x):
        if self.shapes is None:
            height, width = x.shape[2:]
            sizes = [feature_size(layer, width, height) for layer in self.extractor.style_layers]
            self.shapes = [(channels, w * h) for channels, (w, h) in zip(self.channels, sizes)]
            self.image_size = x.size
        return super().forward(x, *self.constants)

    def hybrid_forward(self, F, x, *constants):
        n_content, n_style = len(self.extractor.content_layers), len(self.extractor.style_layers)
        contents, styles = self.extractor.split(self.extractor(x))
        constants, extra = constants[:self.n_targets], constants[self.n_targets:]
        content_targets, rest = constants[:n_content], constants[n_content:]
        if self.style_loss is not None:
            style_targets = []
            for size in self.target_sizes:
                style_targets.append(tuple(rest[:size]))
                rest = rest[size:]
        elif self.regions:
            style_targets = []
            for areas in self.areas:
                grams, masks, rest = rest[:n_style], rest[n_style:2 * n_style], rest[2 * n_style:]
                style_targets.append(Region(list(grams), list(zip(masks, areas))))
        else:
            style_targets = list(rest)
        losses = compute_losses(x, contents, styles, content_targets, style_targets,
                                *self.weights, shapes=self.shapes,
                                content_sizes=self.content_sizes, F=F,
                                statistic=self.style_loss)
        if not self.extra:
            return tuple(losses)
        terms, total = [], losses.total
        for term, arrays in self.extra:
            mine, extra = extra[:len(arrays)], extra[len(arrays):]
            value = F.reshape(term.loss(x, *mine, F=F, size=self.image_size),
                              shape=(1,)) * term.weight
            terms.append(value)
            total = total + value
        return tuple(losses[:3]) + tuple(terms) + (total,)
