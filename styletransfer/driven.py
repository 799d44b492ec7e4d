"""What every long run shares (the optimisation's Run, a network's Training): iterated once by
one thread, which drives MXNet (not thread-safe in 1.x), stopped from any thread after the
current iteration, and asked for its state only by the driving thread or when none drives it.
A subclass calls `_driven()` in its constructor and writes the generator `_run()`."""
import threading


class Driven:
    def _driven(self):
        self._stop = threading.Event()
        self._events = None
        self._driver, self._busy = None, False

    def __iter__(self):
        if self._events is not None:
            raise RuntimeError('%s is iterated once' % type(self).__name__)
        self._events = self._run()
        return self

    def __next__(self):
        self._driver, self._busy = threading.get_ident(), True
        try:
            return next(self._events)
        finally:
            self._busy = False

    def stop(self):
        """End after the current iteration (any thread)."""
        self._stop.set()

    def _check_state_thread(self):
        if self._busy and threading.get_ident() != self._driver:
            raise RuntimeError('state() is taken by the thread that iterates the %s, or when '
                               'no thread is iterating it' % type(self).__name__)
