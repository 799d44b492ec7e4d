"""Optical flow, warping, reliability masks and the temporal-consistency measure.

The flow convention, kept by every function here
-----------------------------------------------
A flow is an HxWx2 float32 array of displacements in pixels: channel 0 is dx (along the width),
channel 1 is dy (along the height). It lives on the grid of one frame and points into another:

    frame[y, x] ~= other[y + flow[y, x, 1], x + flow[y, x, 0]]

`optical_flow(frame, other)` estimates it (OpenCV's calc(prev, next) has this direction), and
`warp(other, flow)` reads `other` where the flow points, which gives a picture in `frame`'s
coordinates. For stylisation, with the previous frame `p` and the current frame `c`:

    backward = optical_flow(c, p)                 # on c's grid, pointing into p
    forward = optical_flow(p, c)                  # on p's grid, pointing into c
    mask = consistency_mask(forward, backward)    # on c's grid, 1 = reliable
    warped = warp(stylised_p, backward)           # the previous result, moved to c

`motion(p, c)` returns (backward, mask). Ruder et al. (2016) use the same names: backward is
the flow from frame i to frame i-1, forward the flow from i-1 to i.

OpenCV is imported inside the functions, so importing this module does not need it.
"""
import numpy as np

# Ruder et al. 2016, section 3.2: the forward-backward check and the motion-boundary test.
DISOCCLUSION_RATIO = 0.01
DISOCCLUSION_OFFSET = 0.5  # pixels squared
BOUNDARY_RATIO = 0.01
BOUNDARY_OFFSET = 0.002

# DIS presets: ULTRAFAST and FAST stop at a quarter of the resolution (finest scale 2); MEDIUM
# refines down to half resolution with a denser patch grid (stride 3 instead of 4) and more
# gradient-descent iterations (25 instead of 16), which is what thin structures and the
# reliability mask need; it still runs in milliseconds at video sizes, far below a stylisation.
DEFAULT_PRESET = 'medium'
_PRESETS = ('ultrafast', 'fast', 'medium')


def _grey(frame, name):
    import cv2
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise ValueError('%s: optical flow takes uint8 frames, not %s' % (name, frame.dtype))
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    if frame.ndim == 2:
        return frame
    raise ValueError('%s: expected an HxWx3 RGB or HxW grey frame, got shape %s'
                     % (name, frame.shape))


def optical_flow(frame, other, preset=DEFAULT_PRESET):
    """Flow on `frame`'s grid pointing into `other` (see the module's convention): HxWx2 float32,
    (dx, dy) in pixels, such that frame(x) ~= other(x + flow(x)).

    Frames are HxWx3 RGB or HxW grey uint8 arrays of one size; DIS (Kroeger et al. 2016) runs on
    their grey levels.
    """
    import cv2
    a, b = _grey(frame, 'frame'), _grey(other, 'other')
    if a.shape != b.shape:
        raise ValueError('frames of different sizes: %s and %s' % (a.shape, b.shape))
    if preset not in _PRESETS:
        raise ValueError('preset must be one of %s, not %r' % (', '.join(_PRESETS), preset))
    dis = cv2.DISOpticalFlow_create(getattr(cv2, 'DISOPTICAL_FLOW_PRESET_' + preset.upper()))
    return dis.calc(a, b, None).astype(np.float32, copy=False)


def _sampling_maps(flow):
    height, width = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return xs + flow[..., 0], ys + flow[..., 1]


def warp(image, flow):
    """`image` read at x + flow(x): bilinear, the border pixels repeated outside the picture.

    `image` is HxW or HxWxC (C up to 4; flows can be warped too), of the flow's height and
    width; the result has its dtype (uint8 results are rounded by OpenCV). OpenCV interpolates
    with weights quantised to 1/32 of a pixel.
    """
    import cv2
    image = np.asarray(image)
    flow = np.asarray(flow, dtype=np.float32)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError('flow must be HxWx2, got shape %s' % (flow.shape,))
    if image.shape[:2] != flow.shape[:2]:
        raise ValueError('image %s and flow %s differ in size' % (image.shape, flow.shape))
    map_x, map_y = _sampling_maps(flow)
    return cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def consistency_mask(forward, backward):
    """Reliability of `backward` (on the current frame's grid): float32 HxW, 1 = reliable, 0 not.

    `backward` is the flow from the current frame into the previous one, `forward` the flow
    from the previous frame into the current one (both HxWx2, see the module's convention).
    After Ruder et al. 2016, with w = backward(x) and w~ = forward(x + w), a pixel is unreliable

    - where the two flows do not cancel (a disocclusion: the pixel was hidden in the previous
      frame): |w + w~|^2 > 0.01 (|w|^2 + |w~|^2) + 0.5, or
    - at a motion boundary: |grad u|^2 + |grad v|^2 > 0.01 |w|^2 + 0.002, with (u, v) = backward
      and central differences (one-sided at the picture's edges). As in the paper, this test
      uses the flow being checked (w, whose gradient it is), not the warped forward flow w~;
    - where w points outside the previous frame (the picture entering at an edge as the camera
      moves): the warp there only repeats the border, which a stylised video would smear
      along; the forward check cannot see it, since both flows are repeated the same way.
    """
    forward = np.asarray(forward, dtype=np.float32)
    backward = np.asarray(backward, dtype=np.float32)
    if forward.shape != backward.shape or backward.ndim != 3 or backward.shape[2] != 2:
        raise ValueError('flows must both be HxWx2, got %s and %s'
                         % (forward.shape, backward.shape))
    returned = warp(forward, backward)
    w2 = (backward ** 2).sum(axis=2)
    disagreement = ((backward + returned) ** 2).sum(axis=2)
    disoccluded = disagreement > DISOCCLUSION_RATIO * (w2 + (returned ** 2).sum(axis=2)) \
        + DISOCCLUSION_OFFSET
    gradient2 = sum(g ** 2 for c in range(2) for g in np.gradient(backward[..., c]))
    boundary = gradient2 > BOUNDARY_RATIO * w2 + BOUNDARY_OFFSET
    height, width = backward.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width]
    x, y = xs + backward[..., 0], ys + backward[..., 1]
    # Half a pixel beyond the edge still reads the edge pixel (bilinear, repeated border).
    outside = (x < -0.5) | (x > width - 0.5) | (y < -0.5) | (y > height - 0.5)
    return (~(disoccluded | boundary | outside)).astype(np.float32)


def motion(previous, current, preset=DEFAULT_PRESET):
    """(backward flow, reliability mask) between two original frames, both on `current`'s grid:
    `warp(stylised_previous, backward)` moves the previous result onto the current frame, and
    the mask says where that can be trusted."""
    backward = optical_flow(current, previous, preset)
    forward = optical_flow(previous, current, preset)
    return backward, consistency_mask(forward, backward)


def motions(frames, preset=DEFAULT_PRESET):
    """`motion` for each consecutive pair of `frames`: len(frames) - 1 (backward, mask) pairs,
    the t-th from frame t to frame t+1. Compute them once to measure several stylisations."""
    frames = list(frames)
    return [motion(frames[t], frames[t + 1], preset) for t in range(len(frames) - 1)]


def _unit_float(image, name):
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255
    if image.dtype.kind != 'f':
        raise ValueError('%s: expected uint8 or float pixels, got %s' % (name, image.dtype))
    return image.astype(np.float32, copy=False)


def warping_errors(stylised, originals=None, pairs=None, preset=DEFAULT_PRESET):
    """Per consecutive pair, the masked mean squared difference between stylised frame t+1 and
    stylised frame t warped onto it by the flow of the ORIGINAL frames.

    Pixels are in [0, 1] (uint8 frames are divided by 255; float frames must already be in
    [0, 1]), so each value is in [0, 1]: the squared differences are averaged over the colour
    channels and over the reliable pixels of the consistency mask. This is the warping error of
    Lai et al. 2018 up to that per-channel mean. A pair without reliable pixels gives nan.

    Give `originals` (the frames the flow is measured on, of the stylised frames' size) or
    `pairs`, the result of `motions(originals)`.
    """
    stylised = list(stylised)
    if pairs is None:
        if originals is None:
            raise ValueError('give the original frames or their motions')
        originals = list(originals)
        if len(originals) != len(stylised):
            raise ValueError('%d stylised frames but %d originals'
                             % (len(stylised), len(originals)))
        pairs = motions(originals, preset)
    if len(pairs) != len(stylised) - 1:
        raise ValueError('%d stylised frames need %d motions, got %d'
                         % (len(stylised), len(stylised) - 1, len(pairs)))
    errors = []
    for t, (backward, mask) in enumerate(pairs):
        before = _unit_float(stylised[t], 'stylised frame %d' % t)
        after = _unit_float(stylised[t + 1], 'stylised frame %d' % (t + 1))
        if before.shape[:2] != mask.shape or after.shape != before.shape:
            raise ValueError('stylised frames %d, %d (%s, %s) do not match the flow (%s)'
                             % (t, t + 1, before.shape, after.shape, mask.shape))
        squared = (after - warp(before, backward)) ** 2
        if squared.ndim == 3:
            squared = squared.mean(axis=2)
        reliable = float(mask.sum())
        errors.append(float((squared * mask).sum()) / reliable if reliable else float('nan'))
    return errors


def warping_error(stylised, originals=None, pairs=None, preset=DEFAULT_PRESET):
    """The mean of `warping_errors` over the pairs that have reliable pixels (nan if none):
    0 for a perfectly consistent video, in [0, 1] (squared differences of [0, 1] pixels)."""
    errors = [e for e in warping_errors(stylised, originals, pairs, preset) if e == e]
    return float(np.mean(errors)) if errors else float('nan')


def blend(stylised, warped_previous, mask, weight):
    """The feed-forward methods' temporal smoothing: on reliable pixels (mask 1),
    (1 - weight) * stylised + weight * warped_previous; elsewhere `stylised` unchanged.

    `stylised` and `warped_previous` are HxWxC arrays of one shape, `mask` HxW in [0, 1] (a
    soft mask blends proportionally), `weight` in [0, 1]: 0 gives `stylised` itself, frame by
    frame. The result has `stylised`'s dtype (rounded for integer pictures).
    """
    if not 0 <= weight <= 1:
        raise ValueError('blend weight must be in [0, 1], not %r' % (weight,))
    stylised = np.asarray(stylised)
    if weight == 0:
        return stylised
    warped_previous = np.asarray(warped_previous)
    mask = np.asarray(mask, dtype=np.float32)
    if warped_previous.shape != stylised.shape or mask.shape != stylised.shape[:2]:
        raise ValueError('blend: stylised %s, warped %s and mask %s do not match'
                         % (stylised.shape, warped_previous.shape, mask.shape))
    alpha = weight * mask
    if stylised.ndim == 3:
        alpha = alpha[..., None]
    a = stylised.astype(np.float32)
    out = a + alpha * (warped_previous.astype(np.float32) - a)
    if stylised.dtype.kind in 'ui':
        info = np.iinfo(stylised.dtype)
        return np.clip(np.round(out), info.min, info.max).astype(stylised.dtype)
    return out.astype(stylised.dtype)


def flow_to_nd(flow, ctx=None):
    """HxWx2 numpy flow -> 1x2xHxW float32 NDArray (channel 0 = dx), as `warp_nd` takes it."""
    import mxnet as mx
    flow = np.asarray(flow, dtype=np.float32)
    return mx.nd.array(flow.transpose(2, 0, 1)[None], ctx=ctx or mx.cpu(), dtype='float32')


def warp_nd(x, flow, F=None):
    """`warp` inside an MXNet graph: `x` (NxCxHxW) read at x + flow(x), bilinear, border repeated.

    `flow` is Nx2xHxW in pixels, channel 0 = dx and channel 1 = dy (`flow_to_nd` turns a numpy
    flow into one). GridGenerator's 'warp' adds the pixel grid to the flow and maps pixel
    centres 0..W-1 onto -1..1; BilinearSampler reads zeros outside that square, so the grid is
    clipped to it first, which repeats the border pixels as OpenCV's BORDER_REPLICATE does.
    `F` is mxnet.nd (the default) or mxnet.sym.
    """
    if F is None:
        from mxnet import nd as F
    grid = F.clip(F.GridGenerator(data=flow, transform_type='warp'), -1, 1)
    return F.BilinearSampler(data=x, grid=grid)


def temporal_loss(x, warped, mask, F=None, size=None):
    """Ruder et al.'s short-term temporal loss: mean over all `size` elements of x (NxCxHxW;
    x.size for NDArrays) of mask * (x - warped)^2, the Nx1xHxW mask broadcast over channels."""
    if F is None:
        from mxnet import nd as F
    d = x - warped
    return F.sum(F.broadcast_mul(d * d, mask)) / (size or x.size)
