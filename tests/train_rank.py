"""One torchrun rank of `gan.train` for tests/test_train_distributed.py: runs gan.train.main(argv), then
prints the names of the process's gloo threads that are still running, so the test can check that the
process group's worker threads ended inside main and do not live on into interpreter shutdown.

    python -m torch.distributed.run --nproc-per-node 2 tests/train_rank.py --loss smmd --out DIR
"""
import os
import sys

from gan.train import main


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


if __name__ == "__main__":
    code = main(sys.argv[1:])
    # One write (shorter than a pipe's atomic size), so the ranks' lines never interleave on the shared stderr.
    os.write(2, f"rank {os.environ['RANK']}: gloo threads after main: {gloo_threads()}\n".encode())
    sys.exit(code)
