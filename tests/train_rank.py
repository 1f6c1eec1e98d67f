"""One torchrun rank of `gan.train` for tests/test_train_distributed.py: runs gan.train.main(argv), then
prints the names of the process's gloo threads that are still running, so the test can check that the
process group's worker threads ended with main and do not live on into interpreter shutdown. A thread that
destroy_process_group has told to stop may still be listed for a moment while it exits (seen once in a few
dozen runs on a loaded 2-core machine), so the list is read again for up to LINGER_S seconds until it is
empty; a worker still running after that would run into shutdown.

    python -m torch.distributed.run --nproc-per-node 2 tests/train_rank.py --loss smmd --out DIR
"""
import os
import sys
import time

from gan.train import main

LINGER_S = 2.0


def gloo_threads() -> list:
    """Names of this process's threads that belong to gloo ("gloo_tcp_loop", "pt_gloo_runloop", ...)."""
    names = []
    for thread in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{thread}/comm") as comm:
                names.append(comm.read().strip())
        except FileNotFoundError:  # the thread ended while we listed
            continue
    return sorted(name for name in names if "gloo" in name)


def gloo_threads_after_exiting() -> tuple:
    """(the gloo threads still running, seconds waited): read until none is left or LINGER_S has passed."""
    start = time.monotonic()
    names = gloo_threads()
    while names and time.monotonic() - start < LINGER_S:
        time.sleep(0.02)
        names = gloo_threads()
    return names, time.monotonic() - start


if __name__ == "__main__":
    code = main(sys.argv[1:])
    left, waited = gloo_threads_after_exiting()
    # One write (shorter than a pipe's atomic size), so the ranks' lines never interleave on the shared stderr.
    os.write(2, f"rank {os.environ['RANK']}: gloo threads after main: {left} ({waited:.2f} s)\n".encode())
    sys.exit(code)
