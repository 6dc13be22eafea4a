"""Helper threads that leave SIGINT and SIGTERM to the main thread: the runner's time-limit timer, the workload's sampler."""

import signal
import threading


def start_deaf_to_signals(thread: threading.Thread) -> None:
    """Start a helper thread that never receives SIGINT/SIGTERM (threads inherit the signal mask).

    The kernel may hand a process's signal to any thread that does not block it; delivered to a
    helper, it would leave the main thread asleep, and Ctrl-C would seem ignored.
    """
    stopping = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, stopping)
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
