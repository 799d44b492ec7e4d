"""The device a run uses and what it can do: the context, MXNet's CPU threads, and whether
bfloat16 runs here.

`set_threads` must run before MXNet is imported (its OpenMP pool reads OMP_NUM_THREADS once,
at import); `import styletransfer` imports no MXNet, so front-ends call it first.
"""
import functools
import os
import subprocess
import sys

from .errors import StyleTransferError

# More threads than this per core only make them wait for each other (and thousands make
# OpenMP abort).
MAX_THREADS_PER_CORE = 4


def cores():
    return len(os.sched_getaffinity(0))


def set_threads(threads=None):
    """Set MXNet's CPU threads (OMP_NUM_THREADS) to `threads`, else keep the environment's, else
    one per core; return the number. Call before MXNet is imported."""
    available = cores()
    if threads is not None:
        if not 1 <= threads <= MAX_THREADS_PER_CORE * available:
            raise StyleTransferError('threads must be 1..%d (%d per core available), not %d'
                                     % (MAX_THREADS_PER_CORE * available, MAX_THREADS_PER_CORE,
                                        threads), 'threads')
        os.environ['OMP_NUM_THREADS'] = str(threads)
    elif not os.environ.get('OMP_NUM_THREADS', '').strip():
        os.environ['OMP_NUM_THREADS'] = str(available)
    # MXNet reads one number (OpenMP's nested list, "4,2", makes it abort as it loads).
    value = os.environ['OMP_NUM_THREADS'].strip()
    if not value.isdigit() or int(value) < 1:
        raise StyleTransferError('OMP_NUM_THREADS=%r is not one number, which MXNet needs; set '
                                 'one or pass threads'
                                 % os.environ['OMP_NUM_THREADS'], 'threads')
    return int(value)


def resolve_ctx(spec='auto'):
    """'auto', 'cpu', 'cpu:N', 'gpu', 'gpu:N' (or an mx.Context) -> (mx.Context, remark)."""
    import mxnet as mx
    if isinstance(spec, mx.Context):
        return spec, 'as given'
    text = str(spec).strip().lower()
    if text == 'auto':
        import d2lzh as d2l
        ctx = d2l.try_gpu()
        why = 'a GPU answered' if ctx.device_type == 'gpu' else 'no GPU usable, using the CPU'
        return ctx, 'auto: %s' % why
    kind, _, index = text.partition(':')
    if kind not in ('cpu', 'gpu') or (index and not index.isdigit()):
        raise StyleTransferError('ctx %r: expected auto, cpu, cpu:N, gpu or gpu:N' % text,
                                 'ctx')
    index = int(index or 0)
    if kind == 'cpu':
        return mx.cpu(index), 'as asked'
    # An explicit GPU request never falls back to the CPU.
    count = mx.context.num_gpus()
    if index >= count:
        raise StyleTransferError('ctx %s: MXNet sees %d GPU(s) here%s' % (
            text, count, '' if count else ' (a CPU-only mxnet, or no driver); use --ctx cpu'),
            'ctx')
    try:
        mx.nd.zeros((1,), ctx=mx.gpu(index)).wait_to_read()
    except mx.base.MXNetError as e:
        raise StyleTransferError('ctx %s: MXNet cannot run on this GPU (%s)'
                                 % (text, str(e).splitlines()[0]), 'ctx') from e
    return mx.gpu(index), 'as asked'


def cpu_model():
    """The CPU's model name from /proc/cpuinfo ('' where there is none)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return ''


def cpu_flags():
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('flags'):
                    return set(line.split(':', 1)[1].split())
    except OSError:
        pass
    return set()


# A tiny bfloat16 convolution through the same AMP path a run takes, in its own process: a
# failing oneDNN primitive surfaces asynchronously in MXNet and must not poison this one.
_PROBE = '''
import mxnet as mx
from mxnet.gluon import nn
from mxnet.contrib import amp
net = nn.HybridSequential()
net.add(nn.Conv2D(4, 3, padding=1, in_channels=3))
net.initialize()
net.hybridize()
x = mx.nd.ones((1, 3, 8, 8))
net(x)
bf = amp.convert_hybrid_block(net, target_dtype='bfloat16', ctx=mx.cpu())
print(float(bf(x).sum().asscalar()))
'''


@functools.lru_cache(maxsize=None)
def bfloat16_supported():
    """Whether oneDNN runs bfloat16 convolutions on this CPU: yes with AVX-512 BF16, no without
    any AVX-512 (oneDNN has no bfloat16 kernels for AVX2, and MXNet fails with "could not
    create a primitive descriptor iterator"); otherwise a probe in a subprocess decides."""
    flags = cpu_flags()
    if 'avx512_bf16' in flags:
        return True
    if flags and 'avx512f' not in flags:
        return False
    env = dict(os.environ, OMP_NUM_THREADS='1')
    try:
        done = subprocess.run([sys.executable, '-c', _PROBE], env=env, capture_output=True,
                              timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def check_dtype(dtype, ctx):
    """Refuse a precision this device cannot run, before anything is built."""
    if dtype != 'bfloat16':
        return
    if ctx.device_type != 'cpu':
        raise StyleTransferError('dtype bfloat16 runs on the CPU only (MXNet 1.9\'s bfloat16 '
                                 'kernels are oneDNN\'s); use --ctx cpu or float32', 'dtype')
    if not bfloat16_supported():
        raise StyleTransferError('dtype bfloat16 needs a CPU with AVX-512 (oneDNN has no '
                                 'bfloat16 kernels for this one); use float32', 'dtype')


def to_bfloat16(block, ctx, *inputs):
    """`block` (a hybridised HybridBlock) converted by MXNet's AMP to run in bfloat16 on
    `ctx`: a SymbolBlock. AMP converts the graph Gluon traced, so the block first runs once on
    `inputs` (in the caller's autograd mode). Its warnings ("cannot decide type" of float32
    data inputs) are silenced."""
    import warnings
    from mxnet.contrib import amp
    block(*inputs)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return amp.convert_hybrid_block(block, target_dtype='bfloat16', ctx=ctx)
