"""Video without flicker: frames stylised in order, each one tied to the previous result where
the optical flow says the picture moved (Ruder et al. 2016, "Artistic style transfer for
videos"), with finished frames kept so an interrupted run resumes.

Two ways to tie a frame to the previous one, by method:
- the book's optimisation (`GatysFrames`): start from the previous result warped onto this
  frame, and add a temporal loss, the masked squared difference between the image and that
  warped result, to the graph (the warp runs inside it: GridGenerator + BilinearSampler);
- feed-forward networks (`FeedForwardFrames`): stylise the frame, then blend the warped previous
  output into it on the reliable pixels.
A temporal weight of 0 is plain frame-by-frame stylisation, for comparison.
"""
import time
from dataclasses import dataclass

import numpy as np

from ..errors import StyleTransferError
from . import flow as fl


@dataclass(frozen=True)
class FrameDone:
    """Reported after every frame (plain data, like the runs' events)."""
    index: int          # 0-based frame number
    count: int          # frames in the clip, if known (else 0)
    seconds: float      # wall time of this frame (flow, stylisation, saving)
    kept: bool = False  # already stored by an earlier run: not stylised again


def _resized_flow(flow, width, height):
    """A flow on a WxH grid: resized, and its displacements scaled with the picture."""
    import cv2
    h, w = flow.shape[:2]
    if (w, h) == (width, height):
        return flow
    out = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= width / w
    out[..., 1] *= height / h
    return out


def temporal_term(previous, backward, mask, weight):
    """The temporal loss of the optimisation as a `gatys.objective.Term`: mean over the image
    of mask * (x - warp(previous, backward))^2 on normalised pixels, weighted. `previous` is the
    previous stylised frame (HxWx3 uint8), `backward` the flow from this frame into the previous
    one and `mask` its reliability (both on this frame's grid, see video.flow); each stage gets
    them at its own size."""
    from mxnet import nd
    from ..gatys.objective import Term

    def constants(width, height, normalizer):
        import cv2
        ctx = normalizer.ctx
        small = cv2.resize(np.asarray(mask, np.float32), (width, height),
                           interpolation=cv2.INTER_LINEAR)
        return [normalizer.preprocess(previous, width, height),
                fl.flow_to_nd(_resized_flow(backward, width, height), ctx),
                nd.array(small[None, None], ctx=ctx)]

    def loss(x, prev, flow, reliable, F, size):
        return fl.temporal_loss(x, fl.warp_nd(prev, flow, F), reliable, F, size)
    return Term('temporal', weight, loss, constants)


class GatysFrames:
    """The book's method per frame: `stylizer` (a gatys Stylizer), `settings` (its stages
    give the frames' size), `style` the Inputs options of the style (style or style_blend,
    region)."""

    def __init__(self, stylizer, settings, style, temporal_weight):
        self.stylizer, self.settings, self.style = stylizer, settings, dict(style)
        self.temporal_weight = float(temporal_weight)

    def __call__(self, frame, previous=None, backward=None, mask=None):
        from ..inputs import Inputs
        if previous is None or self.temporal_weight == 0:
            return self.stylizer.stylize(Inputs(frame, **self.style), self.settings).picture
        # Where the flow is not to be trusted (the picture entering at an edge, disocclusions),
        # the frame itself starts the optimisation, not the smeared warp.
        warped = fl.blend(frame, fl.warp(previous, backward), mask, 1.0)
        inputs = Inputs(frame, init=warped, **self.style)
        term = temporal_term(previous, backward, mask, self.temporal_weight)
        return self.stylizer.stylize(inputs, self.settings, extra_terms=[term]).picture


class FeedForwardFrames:
    """A feed-forward method per frame: `stylize(frame) -> picture` (a network's one pass),
    the warped previous output blended in on reliable pixels with `temporal_weight` in [0, 1]."""

    def __init__(self, stylize, temporal_weight):
        if not 0 <= temporal_weight <= 1:
            raise StyleTransferError('temporal_weight must be in [0, 1] for a feed-forward '
                                     'method, not %g' % temporal_weight, 'temporal_weight')
        self.stylize, self.temporal_weight = stylize, float(temporal_weight)

    def __call__(self, frame, previous=None, backward=None, mask=None):
        out = self.stylize(frame)
        if previous is None or self.temporal_weight == 0:
            return out
        return fl.blend(out, fl.warp(previous, backward), mask, self.temporal_weight)


def stylize_frames(frames, method, store, count=0, stop=None):
    """Stylise `frames` (video.io.Frame records, in order) with `method` (GatysFrames or
    FeedForwardFrames), each finished picture saved in `store` (a video.io.FrameStore); frames
    the store already holds are kept, and the chain of previous results resumes from them.
    Yields a FrameDone per frame; ends early, after a whole frame, once `stop()` is true."""
    done = set(store.done())
    previous_frame = previous_out = None
    for frame in frames:
        started = time.perf_counter()
        if frame.index in done:
            previous_frame, previous_out = frame.image, store.load(frame.index)
            yield FrameDone(frame.index, count, time.perf_counter() - started, kept=True)
            continue
        if previous_out is not None and method.temporal_weight:
            backward, mask = fl.motion(previous_frame, frame.image)
            out = method(frame.image, previous_out, backward, mask)
        else:
            out = method(frame.image)
        store.save(frame.index, out)
        previous_frame, previous_out = frame.image, out
        yield FrameDone(frame.index, count, time.perf_counter() - started)
        if stop is not None and stop():
            return
