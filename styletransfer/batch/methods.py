"""The stylizers a batch can run, by name.

Every method's stylizer is made once per worker process as `Class(model, ctx=ctx)` and then
serves any number of items through the same protocol: `run = stylizer.start(inputs, settings)`,
iterate the run's events, take `run.result.picture`; `stylizer.description` says which weights
it uses. The model spec (`st.Network` for the book's method) is frozen and hashable, so a
worker keys its loaded stylizer by it; settings travel with each item.

Adding a method is one entry here (and its options in the command line's table).
"""
import importlib
from dataclasses import dataclass
from typing import Any, Optional

from ..errors import StyleTransferError


@dataclass(frozen=True)
class Method:
    name: str
    stylizer: Optional[str]     # 'module:Class', or None while the method has not landed
    missing: str = ''           # why it is not available (None stylizer)

    @property
    def available(self):
        return self.stylizer is not None

    def load(self, model, ctx):
        """The method's stylizer for `model` on `ctx` (slow: weights loaded, network built)."""
        if not self.available:
            raise unavailable(self)
        module, _, name = self.stylizer.partition(':')
        return getattr(importlib.import_module(module), name)(model, ctx=ctx)


@dataclass(frozen=True)
class AdaINModel:
    """AdaIN's model spec: its decoder file and the encoder it belongs to (the authors'
    vgg_normalised.pth, or 'zoo', 'random' or a VGG-19 .params). Files must exist where the
    workers run, like --weights PATH."""
    decoder: str
    encoder: str
    min_side = 8        # AdaIN's encoder pools three times before relu4_1

    def to_dict(self):
        return {'decoder': self.decoder, 'encoder': self.encoder}


def adain_stylizer(model, ctx):
    from ..fast.stylizer import FastStylizer
    return FastStylizer(ctx=ctx, decoder=model.decoder, encoder=model.encoder)


@dataclass(frozen=True)
class NetworkModel:
    """A per-style network's spec: its file (or name under ~/.styletransfer/nets)."""
    model: str
    min_side = 1

    def to_dict(self):
        return {'model': self.model}


def network_stylizer(model, ctx):
    from ..fast.stylizer import FastStylizer
    return FastStylizer(model.model, ctx=ctx)


METHODS = {
    'gatys': Method('gatys', 'styletransfer.gatys.stylizer:Stylizer'),
    'adain': Method('adain', 'styletransfer.batch.methods:adain_stylizer'),
    # A per-style network carries its styles: it has no content x style items (the batch
    # command refuses it), but a video's chunks run it on workers.
    'fast': Method('fast', 'styletransfer.batch.methods:network_stylizer'),
}


def unavailable(method):
    return StyleTransferError('method %s is not available yet: %s; use --method gatys'
                              % (method.name, method.missing), 'method')


def get(name):
    """The Method called `name`, refused with one line if unknown or not available yet."""
    method = METHODS.get(name)
    if method is None:
        raise StyleTransferError('method must be one of %s, not %r'
                                 % (', '.join(METHODS), name), 'method')
    if not method.available:
        raise unavailable(method)
    return method


@dataclass(frozen=True)
class Spec:
    """What a worker process keeps loaded, hashable: the method, its model spec, the device,
    and the MXNet threads of the process (applied before MXNet is first imported there)."""
    method: str
    model: Any                  # st.Network for gatys
    ctx: str = 'auto'
    threads: Optional[int] = None
