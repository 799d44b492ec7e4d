// styletransfer's page: choose two pictures and options, submit a job, then follow its events
// (server-sent events: the picture, the book's log lines, the loss curves) until it ends.
// The book's method (gatys) shows its options; a feed-forward one (fast, adain) shows the
// server's networks instead and is one pass: the picture comes at once.
// Plain JavaScript, no libraries: the page works offline. Everything it knows comes from the
// HTTP API described at /docs.
'use strict';

const $ = (id) => document.getElementById(id);
const TERMS = [['content', '--content'], ['style', '--style'], ['tv', '--tv']];
const PICTURES = ['content', 'style', 'style2'];
// A feed-forward pass takes the content's own size unless told, and the bundled pictures are
// up to 2048 pixels wide (a minute of AdaIN on one CPU thread): the page proposes this width.
// Emptied, the field gives the content's size.
const FEED_FORWARD_WIDTH = '512';
const SCHEDULES = {
  quick: '225x150:100:50',
  large: '225x150:500:200 450x300:300:100 900x600:100:50',
};
let options = null;       // GET /api/options
let follower = null;      // the job being shown

// ------------------------------------------------------------------------------ the form

async function loadOptions() {
  const response = await fetch('/api/options');
  options = await response.json();
  SCHEDULES.book = options.book_stages.join(' ');
  for (const what of PICTURES) {
    const select = $(what + '-bundled');
    for (const name of options.bundled) {
      select.add(new Option(name, name));
    }
  }
  // The book's own pair, as `styletransfer train` runs with no pictures.
  chooseBundled('content', options.bundled.includes('rainier.jpg') ? 'rainier.jpg' : '');
  chooseBundled('style', options.bundled.includes('autumn-oak.jpg') ? 'autumn-oak.jpg' : '');
  const method = $('method');
  for (const m of options.methods) {
    const option = new Option(m.name + ': ' + m.title, m.name);
    option.disabled = !m.available;
    option.title = m.note;
    method.add(option);
  }
  const unavailable = options.methods.filter((m) => !m.available);
  $('method-note').textContent = unavailable.map((m) => m.name + ': ' + m.note).join('; ');
  $('method-note').hidden = !unavailable.length;
  showMethod();
  const d = options.defaults;
  for (const name of ['content_weight', 'style_weight', 'tv_weight', 'lr', 'style_scale',
                      'noise_ratio', 'seed', 'log_every']) {
    $(name).value = d[name];
  }
  $('optimizer').value = d.optimizer;
  $('preserve_colors').value = d.preserve_colors;
  $('stages').value = SCHEDULES.book;
  $('size').value = FEED_FORWARD_WIDTH;
  $('weights-default').textContent = 'the server\'s: ' + options.server_weights +
      (options.server_weights === 'random' ? ' (NOT pretrained)' : '');
  $('limits').textContent = 'uploads up to ' + options.max_upload_mb + ' MB; results kept ' +
      options.keep_hours + ' h';
}

function chooseBundled(what, name) {
  $(what + '-bundled').value = name;
  const thumb = $(what + '-thumb');
  if (name) {
    $(what + '-file').value = '';
    thumb.src = '/api/bundled/' + encodeURIComponent(name);
    thumb.hidden = false;
  } else if (!$(what + '-file').files.length) {
    thumb.hidden = true;
  }
}

function chooseFile(what, files) {
  const input = $(what + '-file');
  if (files !== input.files) {
    input.files = files;          // a dropped file becomes the input's, so the form sends it
  }
  if (!input.files.length) {
    return;
  }
  $(what + '-bundled').value = '';
  const thumb = $(what + '-thumb');
  if (thumb.src.startsWith('blob:')) {
    URL.revokeObjectURL(thumb.src);
  }
  thumb.src = URL.createObjectURL(input.files[0]);
  thumb.hidden = false;
}

// The form shows what the chosen method takes. Disabled controls are not sent (FormData
// leaves them out), so a job carries its own method's fields only, as the server asks.
function showMethod() {
  const method = $('method').value;
  const feedForward = method !== 'gatys';
  for (const [id, off] of [['book-options', feedForward], ['network-options', !feedForward],
                           ['fast-options', method !== 'fast'],
                           ['adain-options', method !== 'adain']]) {
    $(id).hidden = off;
    $(id).disabled = off;
  }
  // A per-style network carries its styles: no style picture.
  showPicture('style', method !== 'fast');
  showPicture('style2', method === 'adain' && $('mix-styles').checked);
  $('style2-share-box').hidden = !(method === 'adain' && $('mix-styles').checked);
  const select = $('model');
  const chosen = select.value;
  select.textContent = '';
  for (const m of options.models.filter((m) => m.method === method)) {
    select.add(new Option(m.name, m.name));
  }
  if (Array.from(select.options).some((o) => o.value === chosen)) {
    select.value = chosen;
  }
  showModel();
}

function showPicture(what, shown) {
  $(what + '-choice').hidden = !shown;
  $(what + '-file').disabled = !shown;
  $(what + '-bundled').disabled = !shown;
}

function showModel() {
  const model = options.models.find((m) => m.name === $('model').value);
  const weights = $('style-weights');
  weights.textContent = '';
  if (!model) {
    $('model-about').textContent = '';
    return;
  }
  if (model.method === 'fast') {
    $('model-about').textContent = model.file + ': ' + model.styles.length + ' style' +
        (model.styles.length === 1 ? '' : 's');
    // Weights by index: a style's name may hold the mix's separators.
    model.styles.forEach((name, index) => {
      const label = document.createElement('label');
      label.textContent = name + ' ';
      const input = document.createElement('input');
      input.className = 'style-weight';
      input.dataset.index = index;
      input.inputMode = 'decimal';
      input.value = index === 0 ? '1' : '0';
      label.append(input);
      weights.append(label);
    });
  } else {
    $('model-about').textContent = model.file + ' with the encoder ' + model.encoder;
  }
}

function setUpPictures() {
  for (const what of PICTURES) {
    const drop = $(what + '-drop');
    $(what + '-file').addEventListener('change', (e) => chooseFile(what, e.target.files));
    $(what + '-bundled').addEventListener('change', (e) => chooseBundled(what, e.target.value));
    drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
    drop.addEventListener('dragleave', () => drop.classList.remove('over'));
    drop.addEventListener('drop', (e) => {
      e.preventDefault();
      drop.classList.remove('over');
      if (e.dataTransfer.files.length) {
        chooseFile(what, e.dataTransfer.files);
      }
    });
  }
}

function setUpOptions() {
  $('method').addEventListener('change', showMethod);
  $('model').addEventListener('change', showModel);
  $('mix-styles').addEventListener('change', showMethod);
  for (const id of ['alpha', 'style2-share']) {
    $(id).addEventListener('input', (e) => { $(id + '-value').textContent = e.target.value; });
  }
  $('schedule').addEventListener('change', (e) => {
    if (e.target.value in SCHEDULES) {
      $('stages').value = SCHEDULES[e.target.value];
    }
  });
  $('stages').addEventListener('input', () => { $('schedule').value = 'custom'; });
  $('preset-fast').addEventListener('change', (e) => {
    // Show what the preset does; fields left as they are win over it, as on the command line.
    const preset = options.presets.fast;
    if (e.target.checked) {
      $('stages').value = preset.stages;
      $('schedule').value = 'custom';
      $('optimizer').value = preset.optimizer;
    } else {
      $('stages').value = SCHEDULES.book;
  $('size').value = FEED_FORWARD_WIDTH;
      $('schedule').value = 'book';
      $('optimizer').value = options.defaults.optimizer;
    }
  });
}

function showError(message, field) {
  const box = $('form-error');
  box.textContent = message;
  box.hidden = !message;
  for (const element of document.querySelectorAll('.invalid')) {
    element.classList.remove('invalid');
  }
  if (field) {
    const element = Array.from(document.getElementsByName(field)).find((e) => !e.disabled) ||
        ($(field + '-drop') ? $(field + '-drop') : null);
    if (element) {
      (element.type === 'file' ? element.parentElement : element).classList.add('invalid');
    }
  }
}

async function submit(event) {
  event.preventDefault();
  showError('');
  const data = new FormData($('job-form'));
  for (const [key, value] of Array.from(data.entries())) {
    // Empty fields are left out (the server's defaults are the book's); so is an empty file
    // input, which a browser sends as a nameless empty file.
    if (value === '' || (value instanceof File && !value.name && !value.size)) {
      data.delete(key);
    }
  }
  const method = $('method').value;
  if (method === 'fast') {
    const parts = Array.from(document.querySelectorAll('.style-weight')).map(
        (input) => input.dataset.index + ':' + (input.value.trim() || '0'));
    if (parts.length > 1) {
      data.set('style_mix', parts.join(','));
    }
  } else if (method === 'adain' && $('mix-styles').checked) {
    const share = Number($('style2-share').value);
    data.set('style_mix', '0:' + Math.round((1 - share) * 1000) / 1000 + ',1:' + share);
  }
  for (const what of PICTURES) {
    const file = data.get(what);
    if (file instanceof File && file.size > options.max_upload_mb * 1048576) {
      showError(what + ': ' + file.name + ' is larger than the upload limit of ' +
                options.max_upload_mb + ' MB', what);
      return;
    }
  }
  $('start').disabled = true;
  try {
    const response = await fetch('/api/jobs', {method: 'POST', body: data});
    const answer = await response.json().catch(() => ({error: response.statusText}));
    if (!response.ok) {
      showError(answer.error || ('refused: HTTP ' + response.status), answer.field);
      return;
    }
    history.pushState(null, '', answer.page);
    follow(answer.id);
  } catch (error) {
    showError('the server did not answer (' + error.message + ')');
  } finally {
    $('start').disabled = false;
  }
}

// ----------------------------------------------------------------------- following a job

class Follower {
  constructor(id, method) {
    this.id = id;
    this.feedForward = method !== 'gatys';    // one pass: no curves, nothing to stop
    this.base = '/api/jobs/' + encodeURIComponent(id);
    this.points = [];         // {x, content, style, tv} for the curves
    this.boundaries = [];     // x where a stage starts
    this.offset = 0;          // x of the current stage's first iteration
    this.stage = 0;
    this.lastX = -1;
    this.picture = 0;         // the newest picture number announced
    this.shown = 0;           // the one on the page
    this.status = '';
    this.pending = false;
    this.source = null;
    this.lines = [];          // log lines not on the page yet
  }

  start() {
    const job = $('job');
    job.hidden = false;
    $('log').textContent = '';
    $('picture').hidden = true;
    $('picture-caption').textContent = '';
    $('job-weights').textContent = '';
    $('downloads').hidden = true;
    $('stop').disabled = false;
    $('stop').hidden = this.feedForward;
    $('curves-figure').hidden = this.feedForward;
    $('job-link').href = '/?job=' + encodeURIComponent(this.id);
    this.setStatus('connecting');
    // EventSource reconnects by itself and sends Last-Event-ID: the server goes on from there.
    this.source = new EventSource(this.base + '/events');
    const on = (kind, handler) => this.source.addEventListener(kind, (e) => {
      handler.call(this, JSON.parse(e.data));
      this.schedule();
    });
    on('queue', (d) => this.setStatus('waiting: place ' + d.place + ' in the queue'));
    on('start', () => this.setStatus(this.feedForward ? 'starting: loading the network'
                                                      : 'starting: building the network'));
    on('network', this.onNetwork);
    on('log', (d) => this.lines.push(d.line));
    on('progress', this.onProgress);
    on('picture', (d) => { this.picture = d.number; this.size = d.width + '×' + d.height; });
    on('done', this.onDone);
    this.source.addEventListener('error', () => {
      if (this.source.readyState === EventSource.CLOSED) {
        this.setStatus('lost the server; reload the page to look again');
      }
    });
  }

  close() {
    if (this.source) {
      this.source.close();
    }
  }

  setStatus(text) {
    this.status = text;
    this.schedule();
  }

  onNetwork(d) {
    const weights = $('job-weights');
    weights.textContent = (this.feedForward ? 'network: ' : 'weights: ') + d.weights + '; ' +
        d.context;
    // null: a network's file does not say whether it was trained
    weights.classList.toggle('warn', d.pretrained === false);
  }

  onProgress(p) {
    if (this.feedForward) {
      this.status = 'one pass: ' + p.width + '×' + p.height + ' in ' + p.seconds.toFixed(2) +
          ' s';
      return;
    }
    if (p.stage !== this.stage) {
      this.offset = this.lastX + 1;
      this.stage = p.stage;
      if (this.offset > 0) {
        this.boundaries.push(this.offset);
      }
    }
    const x = this.offset + p.iteration;
    this.lastX = x;
    this.points.push({x: x, iteration: p.iteration, content: p.terms.content,
                      style: p.terms.style, tv: p.terms.tv});
    let text = 'running: stage ' + p.stage + '/' + p.stages + ', ' + p.width + '×' + p.height +
        ', iteration ' + (p.iteration + 1) + '/' + p.iterations;
    if (p.seconds_left !== null) {
      text += ', about ' + clock(p.seconds_left) + ' left';
    }
    this.status = text;
  }

  onDone(d) {
    this.close();
    this.status = d.state + ': ' + d.message;
    $('stop').disabled = true;
    const links = {picture: 'download-picture', sheet: 'download-sheet', log: 'download-log'};
    for (const [name, id] of Object.entries(links)) {
      const link = $(id);
      link.hidden = !d.files.includes(name);
      link.href = this.base + '/files/' + name;
    }
    $('downloads').hidden = !d.files.length;
  }

  // Events can come by the hundred (a tab coming back replays them all): the page is redrawn
  // once per frame, with the newest picture only.
  schedule() {
    if (!this.pending) {
      this.pending = true;
      requestAnimationFrame(() => { this.pending = false; this.render(); });
    }
  }

  render() {
    $('job-status').textContent = this.status;
    if (this.lines.length) {
      const log = $('log');
      const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.textContent += this.lines.join('\n') + '\n';
      this.lines = [];
      if (atBottom) {
        log.scrollTop = log.scrollHeight;
      }
    }
    if (this.picture !== this.shown) {
      this.shown = this.picture;
      const img = $('picture');
      img.src = this.base + '/picture?n=' + this.picture;
      img.hidden = false;
      $('picture-caption').textContent = this.feedForward ? 'the picture, ' + this.size
        : 'picture ' + this.picture + ', ' + this.size;
    }
    if (!this.feedForward) {
      drawCurves($('curves'), this.points, this.boundaries);
    }
  }

  async stop() {
    $('stop').disabled = true;
    this.setStatus('stopping after this iteration');
    await fetch(this.base + '/stop', {method: 'POST'});
  }
}

function clock(seconds) {
  seconds = Math.round(seconds);
  const h = Math.floor(seconds / 3600);
  const m = Math.floor(seconds / 60) % 60;
  const s = seconds % 60;
  return (h ? h + ':' + String(m).padStart(2, '0') : m) + ':' + String(s).padStart(2, '0');
}

// The three weighted losses against the iteration, on a log scale (as report.plot_losses),
// stages one after another with a dashed line where each begins. A stage starts from the
// content itself, so its first content loss is next to nothing (1e-13 and the like): the
// scale ignores first iterations, which are drawn at its bottom edge if they are below it.
function drawCurves(canvas, points, boundaries) {
  const g = canvas.getContext('2d');
  const W = canvas.width;
  const H = canvas.height;
  const pad = {left: 52, right: 10, top: 10, bottom: 24};
  g.clearRect(0, 0, W, H);
  g.font = '11px sans-serif';
  g.fillStyle = '#5f6368';
  const values = [];
  const later = points.filter((p) => p.iteration > 0);
  for (const p of later.length ? later : points) {
    for (const [term] of TERMS) {
      if (p[term] > 0) {
        values.push(Math.log10(p[term]));
      }
    }
  }
  if (!values.length) {
    g.fillText('the curves come with the first iterations', pad.left, H / 2);
    return;
  }
  // A loop, not Math.min(...values): a long run has more values than a call takes arguments.
  let low = Infinity;
  let high = -Infinity;
  for (const v of values) {
    low = Math.min(low, v);
    high = Math.max(high, v);
  }
  low = Math.floor(low);
  high = Math.ceil(high);
  if (high === low) {
    high += 1;
  }
  const last = points[points.length - 1].x;
  const sx = (x) => pad.left + (W - pad.left - pad.right) * (last ? x / last : 0);
  const sy = (v) => H - pad.bottom - (H - pad.top - pad.bottom) *
      (Math.max(v, low) - low) / (high - low);
  g.strokeStyle = '#e3e6ea';
  g.lineWidth = 1;
  for (let v = low; v <= high; v++) {
    g.beginPath();
    g.moveTo(pad.left, sy(v));
    g.lineTo(W - pad.right, sy(v));
    g.stroke();
    g.fillText('1e' + v, 6, sy(v) + 4);
  }
  g.fillText('iteration ' + (last + 1), W - pad.right - 80, H - 6);
  g.setLineDash([4, 4]);
  g.strokeStyle = '#9aa0a6';
  for (const b of boundaries) {
    g.beginPath();
    g.moveTo(sx(b), pad.top);
    g.lineTo(sx(b), H - pad.bottom);
    g.stroke();
  }
  g.setLineDash([]);
  const style = getComputedStyle(document.documentElement);
  g.lineWidth = 1.6;
  for (const [term, colour] of TERMS) {
    g.strokeStyle = style.getPropertyValue(colour).trim();
    g.beginPath();
    let drawing = false;
    for (const p of points) {
      if (!(p[term] > 0)) {      // a zero weight or a NaN: a gap in the line
        drawing = false;
        continue;
      }
      const x = sx(p.x);
      const y = sy(Math.log10(p[term]));
      if (drawing && !boundaries.includes(p.x)) {
        g.lineTo(x, y);
      } else {
        g.moveTo(x, y);
      }
      drawing = true;
    }
    g.stroke();
  }
}

async function follow(id) {
  if (follower) {
    follower.close();
  }
  const response = await fetch('/api/jobs/' + encodeURIComponent(id));
  if (!response.ok) {
    const answer = await response.json().catch(() => ({}));
    $('job').hidden = false;
    $('job-status').textContent = answer.error || 'no such job';
    return;
  }
  const status = await response.json();
  follower = new Follower(id, status.method);
  follower.start();
}

// ---------------------------------------------------------------------------------- start

document.addEventListener('DOMContentLoaded', async () => {
  setUpPictures();
  setUpOptions();
  $('job-form').addEventListener('submit', submit);
  $('stop').addEventListener('click', () => follower && follower.stop());
  await loadOptions();
  const job = new URLSearchParams(location.search).get('job');
  if (job) {
    follow(job);
  }
  document.body.dataset.ready = 'yes';      // for tests: the page has its options
});
