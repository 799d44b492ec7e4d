"""The benchmark's arithmetic and its report: medians over rounds, medians of per-round ratios,
the arithmetic bounds, linearity in pixels, the CPU class, and the fixed-width tables.

Pure functions of the records the workers produced (dicts): nothing here runs a measurement.
"""
import re
import statistics

# The issue asks for cost linear in pixels: s/MP at the largest size within 15% of s/MP here.
REFERENCE_SIZE = (450, 300)
LINEAR_TOLERANCE = 0.15
KINDS = ('ours', 'peer', 'book', 'bf16')
WEIGHTS_NOTE = ('VGG-19 weights are random (seed 0): the time of a step does not depend on the '
                'weight values')
# The preset must end within this of the book run's final total loss (the target).
BOOK_LOSS_TOLERANCE = 0.01

# VGG-19's feature layers as Gluon's vgg19().features numbers them: each convolution (3x3,
# padding 1) is followed by its ReLU, so it takes two indices; a 2x2 max pooling ('M') takes
# one. Numbers are output channels. Counted here, as the peer counts them, rather than read from
# the package: the FLOP count must not follow a change of ours.
VGG19_FEATURES = (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M', 512, 512, 512, 512, 'M',
                  512, 512, 512, 512, 'M')
# The deepest layer the book's losses read: conv5_1, its last style layer.
BOOK_DEEPEST = 28


def size_name(size):
    return '%dx%d' % tuple(size)


def size_of(name):
    """'450x300' -> (450, 300), for names the benchmark itself made."""
    width, height = (int(v) for v in name.lower().split('x'))
    return width, height


# ------------------------------------------------------------------------------ the CPU

def cpu_class(model, flags, bfloat16):
    """What the figures came from: the CPU's model name and the instruction sets that decide
    MXNet's speed here. `flags` are /proc/cpuinfo's (styletransfer.device.cpu_flags()),
    `bfloat16` whether bfloat16 runs (styletransfer.device.bfloat16_supported())."""
    avx2, avx512 = 'avx2' in flags, 'avx512f' in flags
    avx512_bf16 = 'avx512_bf16' in flags
    if not flags:
        isa = 'instruction sets unknown (no CPU flags to read)'
    elif avx512_bf16:
        isa = 'AVX-512, AVX-512 BF16'
    elif avx512:
        # oneDNN runs bfloat16 on plain AVX-512 by converting, without the BF16 instructions.
        isa = 'AVX-512, no AVX-512 BF16: bfloat16 %s' % (
            'without its own instructions' if bfloat16 else 'unavailable')
    elif avx2:
        isa = 'AVX2 only, no AVX-512: bfloat16 unavailable'
    else:
        isa = 'no AVX2, no AVX-512: bfloat16 unavailable'
    return dict(model=model, avx2=avx2, avx512=avx512, avx512_bf16=avx512_bf16,
                bfloat16=bool(bfloat16), text='%s (%s)' % (model, isa))


def bfloat16_missing(cpu):
    """Why bfloat16 measurements cannot run on this CPU (a dict from cpu_class), one phrase."""
    if cpu['avx512']:
        return ('MXNet\'s bfloat16 check failed on this CPU (%s)' % cpu['text'])
    return ('bfloat16 cannot run on this CPU: oneDNN has no bfloat16 kernels without AVX-512 '
            '(%s)' % cpu['text'])


def _cpu_text(machine):
    cpu = (machine or {}).get('cpu_class')
    return cpu['text'] if cpu else 'CPU not recorded'


# ---------------------------------------------------------------------------- arithmetic

def conv_gflop_step(width, height, deepest=BOOK_DEEPEST):
    """Convolution GFLOP of one step: the forward pass plus the input-gradient backward pass
    (2 FLOP per multiply-add), counted as the peer counts them."""
    total, index, channels = 0.0, 0, 3
    for layer in VGG19_FEATURES:
        if index > deepest:
            break
        if layer == 'M':
            width, height = width // 2, height // 2
            index += 1
        else:
            total += 2.0 * width * height * channels * layer * 9
            channels = layer
            index += 2
    return 2 * total / 1e9


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _per_round(records, size, kind):
    return {r['round']: r for r in records if r['size'] == size and r['kind'] == kind and r['ok']}


def _round_ratios(top, bottom, top_key='median_s', bottom_key='median_s'):
    """top[key] / bottom[key] for each round both have."""
    return [top[n][top_key] / bottom[n][bottom_key] for n in sorted(top)
            if n in bottom and bottom[n].get(bottom_key)]


def summarise_size(records, size):
    """Medians over rounds and medians of per-round ratios for one size (a name 'WxH')."""
    width, height = size_of(size)
    rounds = {kind: _per_round(records, size, kind) for kind in KINDS}
    summary = dict(size=size, megapixels=width * height / 1e6,
                   conv_gflop_step=conv_gflop_step(width, height))
    for kind, by_round in rounds.items():
        if not by_round:
            summary[kind] = None
            continue
        entry = dict(rounds_s=[by_round[n]['median_s'] for n in sorted(by_round)],
                     median_s=_median(r['median_s'] for r in by_round.values()),
                     best_s=min(r['median_s'] for r in by_round.values()),
                     peak_mb=max(r['peak_mb'] for r in by_round.values()),
                     cpu_per_wall=_median(r['cpu_s'] / r['wall_s'] for r in by_round.values()
                                          if r.get('wall_s') and 'cpu_s' in r))
        if kind == 'peer':
            for key in ('sgemm_gflops', 'bound_s', 'conv_rate_gflops', 'conv_bound_s'):
                entry[key] = _median(r.get(key) for r in by_round.values())
        entry['s_per_mp'] = entry['median_s'] / summary['megapixels']
        summary[kind] = entry
    ours, peer, book = rounds['ours'], rounds['peer'], rounds['book']
    summary['ratios'] = dict(
        ours_over_peer=_median(_round_ratios(ours, peer)),
        bf16_over_peer=_median(_round_ratios(rounds['bf16'], peer)),
        book_over_ours=_median(_round_ratios(book, ours)),
        ours_over_sgemm_bound=_median(_round_ratios(ours, peer, bottom_key='bound_s')),
        ours_over_conv_bound=_median(_round_ratios(ours, peer, bottom_key='conv_bound_s')))
    if summary['ours']:
        summary['ours']['gflops'] = summary['conv_gflop_step'] / summary['ours']['median_s']
    return summary


def linearity(sizes):
    """s/MP of ours at the largest size over s/MP at 450x300 (or the smallest size if 450x300
    was not measured), and whether it is within LINEAR_TOLERANCE; ratio and verdict are None
    when the largest size is the reference itself."""
    measured = [s for s in sizes if s['ours']]
    if len(measured) < 2:
        return None
    by_name = {s['size']: s for s in measured}
    reference = by_name.get(size_name(REFERENCE_SIZE),
                            min(measured, key=lambda s: s['megapixels']))
    largest = max(measured, key=lambda s: s['megapixels'])
    ratio = within = None
    if largest is not reference:
        ratio = largest['ours']['s_per_mp'] / reference['ours']['s_per_mp']
        within = abs(ratio - 1) <= LINEAR_TOLERANCE
    return dict(reference=reference['size'], largest=largest['size'], ratio=ratio,
                tolerance=LINEAR_TOLERANCE, within=within,
                relative={s['size']: s['ours']['s_per_mp'] / reference['ours']['s_per_mp']
                          for s in measured})


def assemble(machine, options, records):
    """Everything the JSON holds: the run's context, raw records, per-size summaries."""
    names = []
    for r in records:
        if r['size'] not in names:
            names.append(r['size'])
    sizes = [summarise_size(records, name) for name in names]
    settings = {k: v for k, v in options.items() if k != 'sizes'}
    settings['sizes'] = [size_name(s) for s in options.get('sizes', [])]
    settings['weights'] = WEIGHTS_NOTE
    return dict(machine=machine, settings=settings, records=records, sizes=sizes,
                linearity=linearity(sizes))


def summarise_time_to_book_loss(book, fast):
    """`book`, `fast`: {'wall_s', 'trace': [[stage, iteration, total, elapsed], ...],
    'stages'}. The target is the book run's last total; the preset reaches it at the first
    iteration of its last stage whose total is within BOOK_LOSS_TOLERANCE of it."""
    target = book['trace'][-1][2]
    reached = [t for stage, _, total, t in fast['trace']
               if stage == fast['stages'] and total <= target * (1 + BOOK_LOSS_TOLERANCE)]
    seconds = reached[0] if reached else None
    return dict(book_final_total=target, book_wall_s=book['wall_s'],
                fast_final_total=fast['trace'][-1][2], fast_wall_s=fast['wall_s'],
                fast_iterations=[sum(1 for r in fast['trace'] if r[0] == k)
                                 for k in range(1, fast['stages'] + 1)],
                fast_seconds_to_book_loss=seconds,
                ratio_to_book_wall=None if seconds is None else seconds / book['wall_s'],
                weights=book['weights'])


def summarise_bf16_drift(book, bf16):
    """How far the book's schedule run with --dtype bfloat16 moves from float32: the largest
    relative difference of the total loss over all iterations, the final one, and wall time."""
    pairs = [(a[2], b[2]) for a, b in zip(book['trace'], bf16['trace'])]
    rel = [abs(b - a) / abs(a) for a, b in pairs if a]
    return dict(wall_s=bf16['wall_s'], speedup=book['wall_s'] / bf16['wall_s'],
                final_total=pairs[-1][1], max_rel_total=max(rel), final_rel_total=rel[-1],
                iterations=len(pairs))


# ----------------------------------------------------------------------------- the report

def format_context(machine, options):
    lines = [
        'CPU      %s, %s cores (%s available)' % (_cpu_text(machine), machine['cores'],
                                                 machine['cores_available']),
        'threads  %d (OMP_NUM_THREADS for MXNet, torch.set_num_threads for the peer)'
        % machine['threads'],
        'MXNet    %s, features: %s' % (machine['mxnet'], ' '.join(machine['features'])),
        'Python   %s on %s' % (machine['python'], machine['platform']),
        'date     %s' % machine['date'],
        'weights  %s' % WEIGHTS_NOTE,
        'method   %d warm-up + %d timed iterations per process, median; %d round(s) per size, '
        'kinds alternating: %s' % (options['warmup'], options['iters'], options['repeats'],
                                   ', '.join(options['kinds'])),
    ]
    left_out = options.get('left_out')
    if left_out:
        lines.append('left out %s: %s' % (' and '.join(left_out['parts']), left_out['why']))
    if options.get('peer'):
        lines.append('peer     %s %s (it discards 1 warm-up iteration of its own)'
                     % (options['peer'], options['peer_script']))
    if options.get('env'):
        lines.append('env      %s' % ' '.join('%s=%s' % kv for kv in options['env'].items()))
    if options.get('busy'):
        lines.append('busy     %d process(es) spinning beside every measurement (--busy)'
                     % options['busy'])
    if machine.get('env'):
        lines.append('inherited %s' % ' '.join('%s=%s' % kv for kv in machine['env'].items()))
    return '\n'.join(lines)


def _num(value, fmt='%.3f', suffix=''):
    return '-' if value is None else (fmt % value) + suffix


def _field(entry, key):
    return entry.get(key) if entry else None


def format_report(doc):
    """Two fixed-width tables: speed against the book, the peer and the bounds; then cost per
    megapixel and memory. The CPU they came from heads them."""
    speed = [('size', '%-10s'), ('MP', '%6s'), ('ours s/it', '%10s'), ('book s/it', '%10s'),
             ('book/ours', '%10s'), ('peer s/it', '%10s'), ('ours/peer', '%10s'),
             ('sgemm bnd', '%10s'), ('ours/bnd', '%9s'), ('conv bnd', '%9s'),
             ('ours/cbnd', '%10s')]
    bf16 = any(s.get('bf16') for s in doc['sizes'])
    if bf16:
        speed += [('bf16 s/it', '%10s'), ('bf16/peer', '%10s')]
    rows = []
    for s in doc['sizes']:
        ratios = s['ratios']
        rows.append([s['size'], '%.3f' % s['megapixels'],
                     _num(_field(s['ours'], 'median_s'), '%.4f'),
                     _num(_field(s['book'], 'median_s'), '%.4f'),
                     _num(ratios['book_over_ours'], '%.2f', 'x'),
                     _num(_field(s['peer'], 'median_s'), '%.4f'),
                     _num(ratios['ours_over_peer'], '%.2f', 'x'),
                     _num(_field(s['peer'], 'bound_s'), '%.4f'),
                     _num(ratios['ours_over_sgemm_bound'], '%.2f', 'x'),
                     _num(_field(s['peer'], 'conv_bound_s'), '%.4f'),
                     _num(ratios['ours_over_conv_bound'], '%.2f', 'x')]
                    + ([_num(_field(s['bf16'], 'median_s'), '%.4f'),
                        _num(ratios.get('bf16_over_peer'), '%.2f', 'x')] if bf16 else []))
    out = ['', 'on %s' % _cpu_text(doc.get('machine')),
           'Seconds per iteration (median over rounds; ratios: median of per-round ratios)',
           _table(speed, rows)]
    lin = doc.get('linearity')
    ref = lin['reference'] if lin else size_name(REFERENCE_SIZE)
    cost = [('size', '%-10s'), ('ours s/MP', '%10s'), ('vs %s' % ref, '%11s'),
            ('ours GFLOP/s', '%13s'), ('step GFLOP', '%11s'), ('ours best', '%10s'),
            ('CPU/wall', '%9s'), ('MB ours', '%8s'), ('MB book', '%8s'), ('MB peer', '%8s')]
    rows = []
    for s in doc['sizes']:
        rows.append([s['size'], _num(_field(s['ours'], 's_per_mp'), '%.3f'),
                     _num(lin['relative'].get(s['size']) if lin else None, '%.2f', 'x'),
                     _num(_field(s['ours'], 'gflops'), '%.1f'), '%.1f' % s['conv_gflop_step'],
                     _num(_field(s['ours'], 'best_s'), '%.4f'),
                     _num(_field(s['ours'], 'cpu_per_wall'), '%.2f'),
                     _num(_field(s['ours'], 'peak_mb'), '%.0f'),
                     _num(_field(s['book'], 'peak_mb'), '%.0f'),
                     _num(_field(s['peer'], 'peak_mb'), '%.0f')])
    out += ['', 'Cost per megapixel, best round, and peak resident memory (VmHWM, largest over '
            'rounds; MB = MiB)', _table(cost, rows),
            'ours best: the fastest round\'s median s/iter; CPU/wall: CPU seconds over wall '
            'seconds of our process (median over rounds), well under the thread count when '
            'other work took the cores']
    if lin and lin['ratio'] is None:
        out.append('linearity in pixels not judged: no size larger than %s' % lin['reference'])
    elif lin:
        out.append('s/MP at %s is %.2fx s/MP at %s: %s (linear within %d%%)'
                   % (lin['largest'], lin['ratio'], lin['reference'],
                      'linear' if lin['within'] else 'NOT linear', LINEAR_TOLERANCE * 100))
    loads = [r['loadavg_before'] for r in doc['records'] if 'loadavg_before' in r]
    if loads:
        out.append('machine load (1-minute average before each measurement): %.1f .. %.1f on %s '
                   'cores' % (min(loads), max(loads), doc['machine'].get('cores_available', '?')))
    out.append('bnd: convolution FLOPs of forward + input-gradient over the sgemm rate the peer '
               'measured; cbnd: over its 3x3-convolution rate')
    return '\n'.join(out)


def _table(columns, rows):
    widths = [max(len(name), int(re.sub(r'\D', '', fmt))) for name, fmt in columns]

    def line(cells):
        parts = []
        for (name, fmt), width, cell in zip(columns, widths, cells):
            parts.append(cell.ljust(width) if fmt.startswith('%-') else cell.rjust(width))
        return '  '.join(parts).rstrip()

    header = line([name for name, _ in columns])
    return '\n'.join([header, '-' * len(header)] + [line(r) for r in rows])


def format_time_to_book_loss(r):
    lines = ['', 'time to the book\'s loss (bundled images, %s; on %s)'
             % (r['weights'], r.get('cpu', 'CPU not recorded')),
             '  book schedule (Adam 500 + 300):  %.1f s, final total loss %.6g'
             % (r['book_wall_s'], r['book_final_total']),
             '  --preset fast (L-BFGS, %s iterations): %.1f s, final total loss %.6g (%+.2f%%)'
             % ('+'.join(map(str, r['fast_iterations'])), r['fast_wall_s'],
                r['fast_final_total'],
                100 * (r['fast_final_total'] / r['book_final_total'] - 1))]
    b = r.get('bfloat16')
    if b:
        lines.append('  book schedule with --dtype bfloat16: %.1f s (%.2fx faster), final total '
                     'loss %.6g; total loss off float32\'s by at most %.2f%% over its %d '
                     'iterations, %.2f%% at the end' % (
                         b['wall_s'], b['speedup'], b['final_total'], 100 * b['max_rel_total'],
                         b['iterations'], 100 * b['final_rel_total']))
    elif r.get('bfloat16_left_out'):
        lines.append('  book schedule with --dtype bfloat16: left out: %s'
                     % r['bfloat16_left_out'])
    if r['fast_seconds_to_book_loss'] is None:
        lines.append('  --preset fast never came within %g%% of the book\'s final loss'
                     % (100 * BOOK_LOSS_TOLERANCE))
    else:
        lines.append('  --preset fast within %g%% of it after %.1f s = %.2f of the book run\'s '
                     'wall time' % (100 * BOOK_LOSS_TOLERANCE, r['fast_seconds_to_book_loss'],
                                    r['ratio_to_book_wall']))
    return '\n'.join(lines)
