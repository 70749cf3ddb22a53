"""PreemptionWatch: SIGTERM becomes a flag while active; the old handler comes back."""

import os
import signal

from lumiere_jax.training.preemption import EXIT_CODE, PreemptionWatch


def test_sigterm_sets_the_flag_and_the_handler_is_restored():
    before = signal.getsignal(signal.SIGTERM)
    with PreemptionWatch() as watch:
        assert not watch.requested(sync=True)
        os.kill(os.getpid(), signal.SIGTERM)  # would end the test process without the watch
        assert watch.requested(sync=False) and watch.requested(sync=True)
    assert signal.getsignal(signal.SIGTERM) is before
    assert EXIT_CODE == 143
