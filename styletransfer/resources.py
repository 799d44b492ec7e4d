"""Memory: estimate a run's peak before it starts, and what the machine has available.

The estimate is a fit of measured peaks (resident memory of one process running one stage on
the CPU, MXNet 1.9.1 with oneDNN, VGG-19 up to conv5_1, losses inside the graph): about 460 MB
of fixed cost (library, weights, graph) and 4.1 kB per pixel of the largest stage (activations
and their gradients, kept by the static graph). Measured with scripts/train.py, 3 iterations,
VmHWM: 586 MB at 225x150, 1003 MB at 450x300, 2707 MB at 900x600, 4337 MB at 1200x800 (the fit
is within 2.5% of each). L-BFGS adds its curvature pairs: two float32 images per remembered
iteration.
"""
import math

from .errors import StyleTransferError

FIXED_BYTES = 460e6
BYTES_PER_PIXEL = 4.1e3
MARGIN = 1.15     # the fit's error at the measured sizes stays under this
# A feed-forward network's inference (fast_neural_style's TransformerNet, float32, hybridised
# with static memory), VmHWM of one process after two passes: 316 MB at 256x256, 690 MB at
# 512x512, 2171 MB at 1024x1024, 7045 MB at 2048x1536; the fit below covers each.
FEED_FORWARD_FIXED_BYTES = 200e6
FEED_FORWARD_BYTES_PER_PIXEL = 2.3e3


def estimate_peak_bytes(config):
    pixels = max(s.width * s.height for s in config.stages)
    per_pixel = BYTES_PER_PIXEL
    if config.optimizer == 'lbfgs':
        per_pixel += 2 * config.lbfgs_history * 3 * 4
    return MARGIN * (FIXED_BYTES + per_pixel * pixels)


def available_bytes():
    """Memory this process may still use: MemAvailable, or a lower cgroup limit."""
    limits = []
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    limits.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    for path in ('/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes'):
        try:
            with open(path) as f:
                value = f.read().strip()
            if value.isdigit():
                limits.append(int(value))
        except OSError:
            pass
    return min(limits) if limits else None


def check_memory(config, available=None):
    """Raise StyleTransferError if the largest stage would not fit in memory (CPU runs)."""
    stage = max(config.stages, key=lambda s: s.width * s.height)
    return _check('stage', stage.width, stage.height, estimate_peak_bytes(config), FIXED_BYTES,
                  available)


def check_feed_forward(width, height, available=None):
    """Raise StyleTransferError if a feed-forward pass over a WIDTHxHEIGHT picture would not
    fit in memory; return the estimate."""
    need = MARGIN * (FEED_FORWARD_FIXED_BYTES + FEED_FORWARD_BYTES_PER_PIXEL * width * height)
    return _check('picture', width, height, need, FEED_FORWARD_FIXED_BYTES, available)


def _check(what, width, height, need, fixed, available):
    available = available_bytes() if available is None else available
    if available is None or need <= available:
        return need
    per_pixel = (need / MARGIN - fixed) / (width * height)
    pixels = max(0.0, (available / MARGIN - fixed) / per_pixel)
    scale = min(1.0, math.sqrt(pixels / (width * height)))
    raise StyleTransferError(
        '%s %dx%d needs about %.1f GB of memory, %.1f GB is available; the largest size '
        'with its aspect that fits is about %dx%d' % (
            what, width, height, need / 1e9, available / 1e9, int(width * scale),
            int(height * scale)))
