"""A job's HTTP form as the library's objects: fields become Network and Settings fields and are
judged by their own checks (a bad value is refused naming its field), pictures are uploads or
bundled pictures, read and checked as every input is (styletransfer.images.load_image: not an
image, truncated, decompression bombs).

No file path comes from a client: uploads are written to a temporary file of ours, bundled
pictures are named from the package's own list, a job's weights can be the server's default,
'zoo' or 'random', never a file, and a feed-forward job names a model of the server's --models
folder (models.py), never its file.

Each method takes its own fields (METHOD_FIELDS); a field of another method is refused naming
it, so that a setting which would change nothing does not pass unnoticed.
"""
import dataclasses
import os
import re
import tempfile
from typing import Optional

from pydantic import BaseModel, Field

from ..data import bundled, bundled_names
from ..errors import StyleTransferError
from ..images import load_image
from ..inputs import INIT_KINDS, Inputs
from ..settings import MAX_ITERATIONS, Settings
from ..vgg.network import WEIGHT_KINDS, Network
from .jobs import METHODS, Job

LOG_EVERY = 50          # the book prints its line every 50 iterations; so does the CLI
MEGABYTE = 1 << 20
MAX_LABEL = 80          # characters of an uploaded file's name shown back

# The command line's --preset (cli/train.py PRESETS) as fields; tests check they agree.
PRESETS = {
    'fast': {'optimizer': 'lbfgs', 'stop_rtol': '1e-3', 'stop_window': '10',
             'stages': '225x150:150:1000 450x300:80:1000'},
}
SETTINGS_FIELDS = tuple(f.name for f in dataclasses.fields(Settings))
NETWORK_FIELDS = tuple(f.name for f in dataclasses.fields(Network))


class Refusal(Exception):
    """A request refused: the HTTP status, one line saying why, and the field at fault."""

    def __init__(self, status, message, field=None):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


def _text(description):
    return Field(None, description=description)


class JobForm(BaseModel):
    """A job's fields, as form fields. Every value is text, judged by the library's own checks
    (Settings, Network), so that a refusal names the field in the library's words. Empty
    fields count as not given: the defaults are the book's."""
    method: Optional[str] = _text('gatys (the book\'s optimisation; the default unless a '
                                  'model is named), fast (a network trained per style) or '
                                  'adain (any style, one pass)')
    model: Optional[str] = _text('fast and adain: the network, by name (GET /api/options '
                                 'lists them); needed for those methods')
    content_bundled: Optional[str] = _text('a bundled picture as the content, instead of an '
                                           'upload (GET /api/options lists them)')
    style_bundled: Optional[str] = _text('a bundled picture as the style, instead of an upload '
                                         '(gatys, adain; a fast network carries its styles)')
    style2_bundled: Optional[str] = _text('adain: a bundled picture as a second style, instead '
                                          'of an upload (style2)')
    style_mix: Optional[str] = _text('fast: the network\'s styles to mix, STYLE:WEIGHT,... '
                                     'by name or index (default: its first style); adain: '
                                     'the weights of style and style2 as 0:W,1:W (default: '
                                     'equal). Normalised to sum 1')
    alpha: Optional[str] = _text('adain: content/style trade-off from 0 (the content) to 1 '
                                 '(all style; the default)')
    size: Optional[str] = _text('fast and adain: the picture\'s size, WxH, or W keeping the '
                                'content\'s aspect (default: the content\'s size)')
    preset: Optional[str] = _text('fast: L-BFGS with a stop rule and shorter stages, as the '
                                  'command line\'s --preset fast; fields given win over it')
    stages: Optional[str] = _text('WxH:ITERS:DECAY[:LR], several separated by spaces or '
                                  'commas, coarse to fine (default: the book\'s two stages)')
    weights: Optional[str] = _text('zoo (pretrained, from the Gluon model zoo) or random (a '
                                   'smoke test, NOT pretrained); default: the server\'s '
                                   '--weights')
    optimizer: Optional[str] = _text('adam (the book\'s) or lbfgs')
    content_weight: Optional[str] = _text('weight of the content loss (default 1)')
    style_weight: Optional[str] = _text('weight of each style layer\'s loss (default 1000)')
    tv_weight: Optional[str] = _text('weight of the total variation loss (default 10)')
    preserve_colors: Optional[str] = _text('none, luminance or histogram')
    lr: Optional[str] = _text('learning rate of stages that give none (default 0.01)')
    lr_decay: Optional[str] = _text('factor of each learning-rate decay (default 0.1)')
    lbfgs_history: Optional[str] = _text('L-BFGS memory, in iterations')
    stop_rtol: Optional[str] = _text('end a stage once its loss fell by less than this '
                                     '(relative) over stop_window iterations; 0: never')
    stop_window: Optional[str] = _text('window of stop_rtol, in iterations')
    style_scale: Optional[str] = _text('style picture size relative to the stage size')
    style_layer_weights: Optional[str] = _text('one multiplier of style_weight per style '
                                               'layer, comma-separated')
    noise_ratio: Optional[str] = _text('blend this much seeded noise into the first image')
    seed: Optional[str] = _text('seed of the noise and of random weights')
    content_layers: Optional[str] = _text('VGG-19 layers, names or indices (default conv4_4)')
    style_layers: Optional[str] = _text('VGG-19 layers (default conv1_1..conv5_1)')
    pooling: Optional[str] = _text('max (the book\'s) or avg')
    dtype: Optional[str] = _text('float32, or bfloat16 on CPUs with AVX-512')
    init: Optional[str] = _text('content (the book\'s) or noise: what the first stage starts '
                                'from')
    log_every: Optional[str] = _text('a log line every this many iterations (default 50)')


FORM_FIELDS = tuple(JobForm.model_fields) + ('content', 'style', 'style2')
# The fields each method takes; 'method' and the content picture go with every job.
COMMON_FIELDS = ('method', 'content', 'content_bundled', 'preserve_colors')
METHOD_FIELDS = {
    'gatys': COMMON_FIELDS + tuple(
        name for name in JobForm.model_fields
        if name not in COMMON_FIELDS + ('model', 'style2_bundled', 'style_mix', 'alpha', 'size')
    ) + ('style',),
    'fast': COMMON_FIELDS + ('model', 'style_mix', 'size'),
    'adain': COMMON_FIELDS + ('model', 'style', 'style_bundled', 'style2', 'style2_bundled',
                              'style_mix', 'alpha', 'size'),
}


def check_fields(names):
    """Refuse a form field this API does not know (a typo would otherwise pass unnoticed)."""
    for name in names:
        if name not in FORM_FIELDS:
            raise Refusal(422, 'unknown field %r; the fields are %s'
                          % (name, ', '.join(FORM_FIELDS)), name)


@dataclasses.dataclass
class Limits:
    """What the server accepts: its --max-upload-mb, --weights and --models ({name:
    models.Model}), and whether it runs on the CPU (then a run that would not fit in memory is
    refused at once)."""
    max_upload_mb: float = 20.0
    weights: str = 'zoo'
    on_cpu: bool = True
    models: dict = dataclasses.field(default_factory=dict)

    def models_of(self, method):
        return [name for name, model in self.models.items() if model.method == method]

    @property
    def upload_bytes(self):
        return int(self.max_upload_mb * MEGABYTE)


def build_job(form, content, style, limits, folder, style2=None):
    """A Job from `form` (JobForm) and the uploads `content`, `style`, `style2` (file-like
    objects with `filename` and `file`, or None): everything checked, nothing run. `folder`
    takes the uploads while they are read. Raises Refusal."""
    values = {k: v.strip() for k, v in form.model_dump().items()
              if v is not None and v.strip() != ''}
    uploads = {'content': content, 'style': style, 'style2': style2}
    given = set(values) | {what for what, upload in uploads.items() if _given(upload)}
    method = values.pop('method', None)
    if method is None and 'model' in values:        # a model named alone says its method
        model = limits.models.get(values['model'])
        if model is None:
            raise Refusal(422, 'model: no network %r here; the networks are %s' % (
                values['model'], ', '.join(limits.models) or 'none (see serve --models)'),
                'model')
        method = model.method
    method = (method or 'gatys').lower()
    if method not in METHODS:
        raise Refusal(422, 'method must be one of %s, not %r' % (', '.join(METHODS), method),
                      'method')
    for name in sorted(given, key=FORM_FIELDS.index):
        if name not in METHOD_FIELDS[method]:
            takers = [m for m, fields in METHOD_FIELDS.items() if name in fields]
            raise Refusal(422, '%s is for %s jobs, not %s ones' % (name, ' and '.join(takers),
                                                                    method), name)
    if METHODS[method].feed_forward:
        return _feed_forward_job(method, values, uploads, limits, folder)
    preset = values.pop('preset', None)
    if preset is not None:
        if preset.lower() not in PRESETS:
            raise Refusal(422, 'preset must be one of %s, not %r'
                          % (', '.join(PRESETS), preset), 'preset')
        values = dict(PRESETS[preset.lower()], **values)    # fields given win
    log_every = _log_every(values.pop('log_every', None))
    init = values.pop('init', 'content').lower()
    if init not in INIT_KINDS:
        raise Refusal(422, 'init must be one of %s, not %r' % (', '.join(INIT_KINDS), init),
                      'init')
    weights = values.pop('weights', None)
    if weights is not None and weights.lower() not in WEIGHT_KINDS:
        raise Refusal(422, 'weights must be one of %s (a weights file is the server\'s '
                      'choice: --weights), not %r' % (', '.join(WEIGHT_KINDS), weights),
                      'weights')
    content_name, style_name = values.pop('content_bundled', None), values.pop(
        'style_bundled', None)
    if 'stages' in values:
        values['stages'] = tuple(s for s in re.split(r'[\s,]+', values['stages']) if s)
    try:
        network = Network(weights=weights or limits.weights,
                          **{k: v for k, v in values.items() if k in NETWORK_FIELDS})
        settings = Settings(**{k: v for k, v in values.items() if k in SETTINGS_FIELDS})
        settings.check_network(network)
        if limits.on_cpu:
            from ..resources import check_memory
            check_memory(settings)
    except StyleTransferError as e:
        raise Refusal(422, str(e), e.field or 'stages') from None
    notes, labels, pictures = [], {}, {}
    for what, upload, name in (('content', content, content_name),
                               ('style', style, style_name)):
        picture, labels[what], more = _picture(what, upload, name, limits, folder)
        if min(picture.shape[:2]) < network.min_side:
            raise Refusal(422, '%s: %dx%d is too small: the layers used need at least %d '
                          'pixels on each side' % (labels[what], picture.shape[1],
                                                   picture.shape[0], network.min_side), what)
        pictures[what] = picture
        notes += more
    loaded = Inputs(pictures['content'], pictures['style'], init=init).load(network.min_side)
    return Job(method, network, settings, loaded, labels, log_every, notes)


def _feed_forward_job(method, values, uploads, limits, folder):
    """A fast or adain Job: a model of the server's, FastSettings, and the pictures read."""
    from ..fast.stylizer import FastSettings
    from ..fast.adain import DOWNSAMPLING
    from .models import Model
    available = limits.models_of(method)
    if not available:
        raise Refusal(422, 'method %s: this server offers no %s networks (they come from the '
                      'folder of styletransfer serve --models)'
                      % (method, 'per-style' if method == 'fast' else 'AdaIN'), 'method')
    name = values.pop('model', None)
    model = limits.models.get(name)
    if not isinstance(model, Model) or model.method != method:
        raise Refusal(422, 'model: %s; the %s networks here are %s'
                      % ('name one' if name is None else 'no %s network %r' % (method, name),
                         method, ', '.join(available)), 'model')
    mix = values.pop('style_mix', None)
    try:
        settings = FastSettings(style_mix=(mix or ()) if method == 'fast' else (),
                                **{k: values[k] for k in ('size', 'preserve_colors', 'alpha')
                                   if k in values})
        parsed = FastSettings(style_mix=mix).style_mix if mix else ()
    except StyleTransferError as e:
        raise Refusal(422, str(e), e.field or 'size') from None
    notes, labels, pictures = [], {}, {}
    for what in ('content', 'style', 'style2') if method == 'adain' else ('content',):
        if what == 'style2' and not (_given(uploads[what]) or values.get(what + '_bundled')):
            continue
        picture, labels[what], more = _picture(what, uploads[what], values.get(
            what + '_bundled'), limits, folder)
        pictures[what] = picture
        notes += more
    if method == 'fast':
        keys = [_style_key(key, model, mix) for key, _ in parsed]
        blend = ()
    else:
        keys = [_style_index(key, len(pictures) - 1, mix) for key, _ in parsed]
        weights = [0.0] * (len(pictures) - 1) if parsed else [1.0] * (len(pictures) - 1)
        for key, (_, weight) in zip(keys, parsed):
            weights[key] = weight
        blend = tuple(zip([pictures[w] for w in ('style', 'style2') if w in pictures],
                          weights))
    if len(set(keys)) != len(keys):
        raise Refusal(422, 'style_mix %r names a style twice' % mix, 'style_mix')
    content = pictures['content']
    min_side = DOWNSAMPLING if method == 'adain' else 1
    if min(content.shape[:2]) < min_side:
        raise Refusal(422, '%s: %dx%d is too small: AdaIN\'s encoder needs at least %d pixels '
                      'on each side' % (labels['content'], content.shape[1], content.shape[0],
                                        min_side), 'content')
    width, height = settings.output_size(content.shape[1], content.shape[0])
    if method == 'adain' and min(width, height) < min_side:
        raise Refusal(422, 'size %dx%d is too small: AdaIN\'s encoder needs at least %d pixels '
                      'on each side' % (width, height, min_side), 'size')
    if limits.on_cpu:
        from ..resources import check_feed_forward
        try:
            check_feed_forward(width, height)
        except StyleTransferError as e:
            raise Refusal(422, str(e), 'size') from None
    try:
        inputs = Inputs(content, style_blend=blend)
    except StyleTransferError as e:
        raise Refusal(422, str(e).replace('style_blend', 'style_mix'), 'style_mix') from None
    return Job(method, model, settings, inputs, labels, None, notes)


def _style_key(key, model, mix):
    """A per-style network's style by name or index, or Refusal naming style_mix."""
    if key in model.styles or (isinstance(key, int) and key < len(model.styles)):
        return model.styles.index(key) if isinstance(key, str) else key
    raise Refusal(422, 'style_mix %r: %s has no style %r (its styles: %s, or 0..%d)'
                  % (mix, model.name, key, ', '.join(model.styles), len(model.styles) - 1),
                  'style_mix')


def _style_index(key, count, mix):
    """AdaIN's style_mix key: 0 the style, 1 the second style (when one is given)."""
    if isinstance(key, int) and key < count:
        return key
    raise Refusal(422, 'style_mix %r: AdaIN\'s styles are numbered %s' % (
        mix, '0 (style) and 1 (style2)' if count == 2 else '0 (style; give style2 to mix '
        'two)'), 'style_mix')


def _given(upload):
    return upload is not None and bool(upload.filename or upload.size)


def _log_every(text):
    if text is None:
        return LOG_EVERY
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_ITERATIONS:
        raise Refusal(422, 'log_every must be a whole number from 1 to %d, not %r'
                      % (MAX_ITERATIONS, text), 'log_every')
    return value


def _picture(what, upload, name, limits, folder):
    """(HxWx3 uint8, label, notes) of an upload or a bundled picture; Refusal naming `what`."""
    has_upload = _given(upload)
    if has_upload and name:
        raise Refusal(422, '%s: give an upload or a bundled picture, not both' % what, what)
    if name:
        if name not in bundled_names():     # only the package's own names: never a path
            raise Refusal(422, '%s_bundled: no bundled picture %r (there are %s)'
                          % (what, name, ', '.join(bundled_names())), what + '_bundled')
        picture, notes = load_image(bundled(name))
        return picture, '%s (bundled)' % name, []
    if not has_upload:
        raise Refusal(422, '%s: a picture is needed: upload one or name a bundled one (%s_'
                      'bundled)' % (what, what), what)
    label = _label(upload.filename) or 'the uploaded %s picture' % what
    data = upload.file.read(limits.upload_bytes + 1)
    if len(data) > limits.upload_bytes:
        raise Refusal(413, '%s: %s is larger than the upload limit of %g MB (--max-upload-mb)'
                      % (what, label, limits.max_upload_mb), what)
    fd, path = tempfile.mkstemp(prefix='upload-', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
        picture, notes = load_image(path)
    except StyleTransferError as e:
        # load_image names the file: say which of the user's pictures it was instead.
        raise Refusal(422, str(e).replace(path, '%s %s' % (what, label)), what) from None
    finally:
        os.remove(path)
    return picture, label, [n.replace(path, label) for n in notes]


def _label(filename):
    """An uploaded file's name as we show it back: its last part, printable, short."""
    name = re.split(r'[\\/]', filename or '')[-1]
    name = ''.join(c for c in name if c.isprintable())
    return name if len(name) <= MAX_LABEL else name[:MAX_LABEL - 1] + '…'
