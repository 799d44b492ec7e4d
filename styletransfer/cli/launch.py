"""Start a data-parallel training on this machine: MXNet's distributed key-value store needs a
scheduler, servers and workers, each the same command with DMLC_* variables telling it its
role (MXNet serves on import in a scheduler or server process; a worker trains).
`styletransfer train-net --workers N --servers M ...` starts them all here, on 127.0.0.1.

Several machines: run the same train-net command on each, with the same DMLC variables but
DMLC_ROLE: one scheduler (its address and a free port shared by all), M servers, N workers:
  export DMLC_PS_ROOT_URI=10.0.0.1 DMLC_PS_ROOT_PORT=9091 DMLC_NUM_SERVER=M DMLC_NUM_WORKER=N
  DMLC_ROLE=scheduler styletransfer train-net ARGS      # once, on 10.0.0.1
  DMLC_ROLE=server styletransfer train-net ARGS         # M times (any machines)
  DMLC_ROLE=worker styletransfer train-net ARGS         # N times (one per machine or GPU)
ARGS are the same everywhere (without --workers/--servers). Every worker reads files[rank::N]
of --content-dir, and ranks are handed out as workers connect, so each worker's machine needs
the whole folder at that path; the style pictures too. Worker 0 writes the outputs (network,
log, curve, samples, checkpoints) on its machine; --resume needs the checkpoint at the same
path on every worker's machine. Worker 0 checks its outputs only once it knows its rank: if
it refuses them, stop the other processes by hand (the launcher does that itself). A machine
with several addresses picks one with DMLC_INTERFACE=eth0 (ps-lite's variable); PS_VERBOSE=1
shows the connections.
"""
import os
import signal
import socket
import subprocess
import sys
import time

# How long servers and the scheduler get to leave once every worker has ended.
SHUTDOWN_SECONDS = 30


def free_port():
    """A TCP port free on 127.0.0.1 now (the scheduler binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def strip_options(argv, names):
    """argv without the options `names` (each taking one value, as '--x V' or '--x=V')."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in names:
            skip = True
        elif not any(arg.startswith(name + '=') for name in names):
            out.append(arg)
    return out


def launch(command, workers, servers, worker_threads, prog):
    """Run `command` (a list) as scheduler, `servers` servers and `workers` workers on
    127.0.0.1; return the first failing worker's exit status, else 0. Ctrl-C or SIGTERM here
    is passed to the workers as SIGTERM: they agree to stop after the same iteration and
    worker 0 writes the checkpoint."""
    port = free_port()
    base = dict(os.environ, DMLC_PS_ROOT_URI='127.0.0.1', DMLC_PS_ROOT_PORT=str(port),
                DMLC_NUM_SERVER=str(servers), DMLC_NUM_WORKER=str(workers))
    print('%s: scheduler on 127.0.0.1:%d, %d server(s), %d worker(s) of %d thread(s)'
          % (prog, port, servers, workers, worker_threads), file=sys.stderr, flush=True)

    def start(role, threads):
        env = dict(base, DMLC_ROLE=role, OMP_NUM_THREADS=str(threads))
        # their own session: a terminal's Ctrl-C reaches this process only, which passes it to
        # the workers; servers and the scheduler must outlive it until the workers are done
        return subprocess.Popen(command, env=env, start_new_session=True)
    helpers = [start('scheduler', 1)] + [start('server', 1) for _ in range(servers)]
    trainers = [start('worker', worker_threads) for _ in range(workers)]

    def forward(signum, frame):
        for p in trainers:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        status = 0
        while any(p.poll() is None for p in trainers):
            failed = [p.returncode for p in trainers if p.returncode not in (None, 0, 130)]
            if failed:
                # the others would wait for it at the next exchange forever
                status = failed[0]
                for p in trainers + helpers:
                    if p.poll() is None:
                        p.terminate()
                break
            time.sleep(0.2)
        codes = [p.wait() for p in trainers]
        status = status or next((c for c in codes if c), 0)
        deadline = time.monotonic() + SHUTDOWN_SECONDS
        for p in helpers:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.terminate()
                p.wait()
        return status
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
