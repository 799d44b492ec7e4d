"""A screenshot of `styletransfer serve`'s page during a run, taken with headless chromium.

    python docs/web_screenshot.py [-o docs/web-page.png] [--weights random]

Serves the page on a free loopback port, starts a run of the bundled rainier.jpg and
autumn-oak.jpg from the page as a person would, waits for --iterations iterations and saves what
the browser shows. With --weights random (the default here: pretrained weights cannot be
fetched everywhere) the page itself says the weights are NOT pretrained, and so does the
picture: it is a smoke run, not a style transfer. Needs the web extra, Selenium, and Debian's
chromium and chromium-driver.
"""
import argparse
import os
import socket
import sys
import tempfile
import threading
import time

CHROMIUM = '/usr/bin/chromium'
CHROMEDRIVER = '/usr/bin/chromedriver'
FLAGS = ('--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--no-first-run', '--hide-scrollbars')


def wait_for(check, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.1)
    raise SystemExit('web_screenshot: timed out waiting for %s' % what)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('-o', '--output', default=os.path.join('docs', 'web-page.png'))
    p.add_argument('--weights', default='random', help='zoo, random or a .params file')
    p.add_argument('--stages', default='225x150:300:100')
    p.add_argument('--iterations', type=int, default=120,
                   help='take the picture after this many iterations')
    p.add_argument('--size', default='1400,1150', help='browser window, WIDTH,HEIGHT')
    args = p.parse_args(argv)

    from styletransfer import device
    device.set_threads(None)
    import uvicorn
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    from styletransfer.files import atomic_path
    from styletransfer.web.server import LOOPBACK_NAMES, create_app

    app = create_app(weights=args.weights, ctx='cpu', preview_seconds=0.5,
                     allowed_hosts=LOOPBACK_NAMES)
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    sock.listen(16)
    url = 'http://127.0.0.1:%d/' % sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level='warning',
                                           timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, kwargs={'sockets': [sock]}, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, 'the server')

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix='web-screenshot-')
    for flag in FLAGS + ('--user-data-dir=' + profile, '--window-size=' + args.size):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(url)
        wait_for(lambda: driver.execute_script('return document.body.dataset.ready') == 'yes',
                 30, 'the page')
        if args.weights == 'random':
            Select(driver.find_element(By.ID, 'weights')).select_by_value('random')
        select = Select(driver.find_element(By.ID, 'schedule'))
        select.select_by_value('custom')
        stages = driver.find_element(By.ID, 'stages')
        stages.clear()
        stages.send_keys(args.stages)
        driver.find_element(By.ID, 'start').click()
        status = driver.find_element(By.ID, 'job-status')

        def far_enough():
            text = status.text
            if 'iteration' not in text:
                return False
            done = int(text.split('iteration ')[1].split('/')[0])
            return done >= args.iterations
        wait_for(far_enough, 1800, '%d iterations' % args.iterations)
        time.sleep(0.6)     # the newest preview loaded and drawn
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with atomic_path(args.output) as tmp:
            driver.save_screenshot(tmp)
        print('web_screenshot: %s (%s)' % (args.output, status.text))
        driver.find_element(By.ID, 'stop').click()
    finally:
        driver.quit()
        app.state.jobs.close()
        server.should_exit = True
        thread.join(60)
    return 0


if __name__ == '__main__':
    sys.exit(main())
