"""The page in a real browser: Debian's chromium, headless, driven by Selenium through
/usr/bin/chromedriver, against the real server (uvicorn) in a thread. Nothing here is skipped:
without chromium these tests fail (.ci/run installs it)."""
import http.client
import json
import os
import re
import urllib.parse
import urllib.request

import pytest
from PIL import Image

from styletransfer.web.server import LOOPBACK_NAMES, create_app
from webtools import ServerThread, encode, picture, wait_for, write_models

CHROMIUM = '/usr/bin/chromium'
CHROMEDRIVER = '/usr/bin/chromedriver'
FLAGS = ('--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--no-first-run')
LONG = '48x36:4000:4000'        # runs until stopped

# The displayed picture as (src, checksum of its pixels, width, height), or null before it
# has loaded: what a person sees changing.
PICTURE_JS = """
const img = document.getElementById('picture');
if (img.hidden || !img.complete || !img.naturalWidth) { return null; }
const c = document.createElement('canvas');
c.width = img.naturalWidth; c.height = img.naturalHeight;
const g = c.getContext('2d');
g.drawImage(img, 0, 0);
let sum = 0;
for (const v of g.getImageData(0, 0, c.width, c.height).data) { sum = (sum * 31 + v) % 1000000007; }
return [img.src, sum, c.width, c.height];
"""
# Pixels of the curves' canvas near each loss colour (anti-aliasing blurs them a little).
CURVES_JS = """
const c = document.getElementById('curves');
const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
const colours = {content: [0x1f, 0x77, 0xb4], style: [0xff, 0x7f, 0x0e], tv: [0x2c, 0xa0, 0x2c]};
const counts = {};
for (const [name, rgb] of Object.entries(colours)) {
  let n = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] > 200 && Math.abs(d[i] - rgb[0]) < 40 && Math.abs(d[i + 1] - rgb[1]) < 40 &&
        Math.abs(d[i + 2] - rgb[2]) < 40) { n++; }
  }
  counts[name] = n;
}
return counts;
"""


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    models = tmp_path_factory.mktemp('models')
    write_models(models)         # 'two' (a per-style network) and 'decoder' (AdaIN)
    app = create_app(str(tmp_path_factory.mktemp('results')), weights='random', ctx='cpu',
                     max_upload_mb=2, preview_seconds=0.2, allowed_hosts=LOOPBACK_NAMES,
                     models=str(models))
    with ServerThread(app) as running:
        yield running


@pytest.fixture(scope='module')
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            pytest.fail('%s is missing: apt-get install chromium chromium-driver' % path)
    downloads = tmp_path_factory.mktemp('downloads')
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS + ('--user-data-dir=%s' % tmp_path_factory.mktemp('profile'),
                         '--window-size=1280,1100'):
        options.add_argument(flag)
    options.add_experimental_option('prefs', {'download.default_directory': str(downloads),
                                              'download.prompt_for_download': False})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd('Page.setDownloadBehavior',
                           {'behavior': 'allow', 'downloadPath': str(downloads)})
    driver.downloads = downloads
    yield driver
    driver.quit()


def element(driver, name):
    from selenium.webdriver.common.by import By
    return driver.find_element(By.ID, name)


def open_page(driver, url):
    driver.get(url)
    wait_for(lambda: driver.execute_script('return document.body.dataset.ready') == 'yes',
             timeout=30)


def type_into(driver, name, text):
    field = element(driver, name)
    field.clear()
    field.send_keys(text)


def get_json(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def test_a_run_watched_stopped_and_taken_home(site, browser, tmp_path):
    from selenium.webdriver.support.ui import Select
    content, style = tmp_path / 'photo.png', tmp_path / 'painting.png'
    content.write_bytes(encode(picture(64, 48, 1)))
    style.write_bytes(encode(picture(48, 64, 2)))
    open_page(browser, site.url + '/')
    assert element(browser, 'content-bundled').get_attribute('value') == 'rainier.jpg'
    element(browser, 'content-file').send_keys(str(content))
    element(browser, 'style-file').send_keys(str(style))
    assert element(browser, 'content-bundled').get_attribute('value') == ''
    assert element(browser, 'content-thumb').get_attribute('src').startswith('blob:')
    Select(element(browser, 'weights')).select_by_value('random')
    type_into(browser, 'stages', LONG)
    browser.find_element('css selector', 'details summary').click()     # more options
    type_into(browser, 'log_every', '5')
    element(browser, 'start').click()

    status = element(browser, 'job-status')
    wait_for(lambda: 'iteration' in status.text, timeout=60)
    job_id = re.search(r'job=([\w-]+)', browser.current_url).group(1)
    assert 'NOT pretrained' in element(browser, 'job-weights').text
    log = element(browser, 'log')
    first = wait_for(lambda: browser.execute_script(PICTURE_JS), timeout=30)
    lines = len(log.text.splitlines())
    # The preview changes (a newer picture, other pixels) and the log grows as the run goes.
    later = wait_for(lambda: (lambda p: p if p and p[1] != first[1] and p[0] != first[0]
                              else None)(browser.execute_script(PICTURE_JS)), timeout=30)
    assert later[2:] == [48, 36]
    wait_for(lambda: len(log.text.splitlines()) >= lines + 2, timeout=30)
    assert re.fullmatch(r'running: stage 1/1, 48×36, iteration \d+/4000, about [\d:]+ left',
                        status.text)
    epochs = [line for line in log.text.splitlines() if line.startswith('epoch')]
    assert epochs and all(re.fullmatch(r'epoch +\d+, content loss [\d.]+, style loss [\d.]+, '
                                       r'TV loss [\d.]+, [\d.]+ sec', e) for e in epochs)
    assert [int(e.split(',')[0].split()[1]) % 5 for e in epochs] == [0] * len(epochs)
    curves = browser.execute_script(CURVES_JS)
    assert min(curves.values()) > 20, curves          # all three curves are drawn

    element(browser, 'stop').click()
    wait_for(lambda: status.text.startswith('stopped'), timeout=30)
    assert element(browser, 'downloads').is_displayed()
    stopped_at = get_json(site.url + '/api/jobs/' + job_id)['position']
    element(browser, 'download-picture').click()
    path = browser.downloads / ('styletransfer-%s-picture.png' % job_id[:8])
    wait_for(path.exists, timeout=30)
    data = path.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n'
    with Image.open(path) as img:
        assert img.format == 'PNG' and img.size == (48, 36)
    # The page showed the book's lines, exactly as the log file has them.
    with urllib.request.urlopen(site.url + '/api/jobs/%s/files/log' % job_id) as response:
        assert response.read().decode() == log.text + '\n'
    shown = log.text

    # Coming back with the job's link shows it all again.
    open_page(browser, element(browser, 'job-link').get_attribute('href'))
    wait_for(lambda: element(browser, 'job-status').text.startswith('stopped'), timeout=30)
    assert element(browser, 'log').text == shown
    assert wait_for(lambda: browser.execute_script(PICTURE_JS), timeout=30)[2:] == [48, 36]
    assert get_json(site.url + '/api/jobs/' + job_id)['position'] == stopped_at


def test_a_non_image_upload_shows_the_error_on_the_page(site, browser, tmp_path):
    notes = tmp_path / 'notes.png'
    notes.write_text('these are words, not pixels\n' * 20)
    open_page(browser, site.url + '/')
    element(browser, 'content-file').send_keys(str(notes))
    element(browser, 'start').click()
    error = element(browser, 'form-error')
    wait_for(error.is_displayed, timeout=30)
    assert error.text == 'content notes.png: not an image file Pillow can read'
    assert 'invalid' in element(browser, 'content-drop').get_attribute('class')
    assert not element(browser, 'job').is_displayed()
    assert 'job=' not in browser.current_url


DROP_JS = """
const [text, name] = arguments;
const files = new DataTransfer();
files.items.add(new File([text], name, {type: 'image/png'}));
const box = document.getElementById('style-drop');
for (const kind of ['dragover', 'drop']) {
  box.dispatchEvent(new DragEvent(kind, {dataTransfer: files, bubbles: true, cancelable: true}));
}
return [document.getElementById('style-file').files[0].name,
        document.getElementById('style-bundled').value,
        document.getElementById('style-thumb').src.slice(0, 5)];
"""


def test_a_dropped_picture_is_the_one_sent(site, browser):
    open_page(browser, site.url + '/')
    assert browser.execute_script(DROP_JS, 'dropped words', 'dropped.png') == [
        'dropped.png', '', 'blob:']
    element(browser, 'start').click()
    error = element(browser, 'form-error')
    wait_for(error.is_displayed, timeout=30)
    assert error.text == 'style dropped.png: not an image file Pillow can read'
    assert 'invalid' in element(browser, 'style-drop').get_attribute('class')


def test_an_adain_picture_from_bundled_pictures(site, browser):
    from selenium.webdriver.support.ui import Select
    open_page(browser, site.url + '/')
    assert element(browser, 'network-options').get_attribute('hidden') is not None
    Select(element(browser, 'method')).select_by_value('adain')
    # the book's options give way to the network's
    assert not element(browser, 'book-options').is_displayed()
    assert element(browser, 'network-options').is_displayed()
    assert [o.text for o in Select(element(browser, 'model')).options] == ['decoder']
    assert 'vgg_normalised.pth' in element(browser, 'model-about').text
    Select(element(browser, 'content-bundled')).select_by_value('tubingen.jpg')
    Select(element(browser, 'style-bundled')).select_by_value('starry_night.jpg')
    browser.execute_script("const a = document.getElementById('alpha'); a.value = '0.5'; "
                           "a.dispatchEvent(new Event('input'));")
    assert element(browser, 'alpha-value').text == '0.5'
    type_into(browser, 'size', '96')
    element(browser, 'start').click()

    status = element(browser, 'job-status')
    wait_for(lambda: status.text.startswith('finished'), timeout=60)
    job_id = re.search(r'job=([\w-]+)', browser.current_url).group(1)
    assert wait_for(lambda: browser.execute_script(PICTURE_JS), timeout=30)[2:] == [96, 72]
    assert element(browser, 'job-weights').text.startswith(
        'network: decoder: AdaIN decoder decoder.pth with encoder vgg_normalised.pth')
    assert not element(browser, 'curves-figure').is_displayed()     # no curves for one pass
    state = get_json(site.url + '/api/jobs/' + job_id)
    assert (state['method'], state['model'], state['content'], state['style']) == (
        'adain', 'decoder', 'tubingen.jpg (bundled)', 'starry_night.jpg (bundled)')
    assert state['settings']['alpha'] == 0.5 and state['settings']['size'] == [96, None]
    log = element(browser, 'log').text
    assert '# network: decoder: AdaIN decoder decoder.pth' in log
    assert re.search(r'^# one pass: 96x72 in [\d.]+ s$', log, re.M)
    element(browser, 'download-picture').click()
    path = browser.downloads / ('styletransfer-%s-picture.png' % job_id[:8])
    wait_for(path.exists, timeout=30)
    with Image.open(path) as img:
        assert img.format == 'PNG' and img.size == (96, 72)    # tubingen is 1024x768


def test_a_closed_connection_leaves_its_job_running(site):
    form = urllib.parse.urlencode({'content_bundled': 'tubingen.jpg', 'weights': 'random',
                                   'style_bundled': 'starry_night.jpg',
                                   'stages': '32x24:30:30'}).encode()
    with urllib.request.urlopen(site.url + '/api/jobs', data=form, timeout=30) as response:
        job_id = json.load(response)['id']
    host, port = site.url.split('//')[1].split(':')
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request('GET', '/api/jobs/%s/events' % job_id)
    stream = connection.getresponse()
    while stream.readline() != b'event: progress\n':
        pass
    connection.close()                     # a tab closed mid-run
    state = wait_for(lambda: (lambda s: s if s['state'] not in ('queued', 'running') else None)(
        get_json(site.url + '/api/jobs/' + job_id)), timeout=60)
    assert state['state'] == 'finished' and state['position'] == [1, 30]
    assert state['files'] == ['log', 'picture', 'sheet']


def test_the_api_page_draws_every_endpoint_offline(site, browser):
    browser.get(site.url + '/docs')
    wait_for(lambda: len(browser.find_elements('css selector', '.endpoint')) >= 9, 30)
    text = browser.find_element('id', 'endpoints').text
    for path in ('/api/jobs', '/api/jobs/{job_id}/events', '/api/jobs/{job_id}/stop'):
        assert path in text
    assert 'content_weight' in text          # the submission's form fields are listed
