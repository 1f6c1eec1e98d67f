"""How fastmmd.distributed's time and memory per rank scale with the number of ranks, side by side in one run.

    python -m bench.distributed_scaling                      # exact KID, N = M = 16000, d = 2048, 1, 2, 4 ranks
    python -m bench.distributed_scaling --op mmd2-grad --rows 40000 --features 64   # MMD² forward + backward
    python -m bench.distributed_scaling --device cuda --worlds 1 2 4 8   # nccl, one GPU per rank

For each world size P it starts P processes with torchrun (gloo on CPUs, nccl on GPUs; --threads intra-op
threads each), each holding N/P rows of x and M/P of y, drawn on the rank itself (no rank ever holds the
global samples), and times one call after a warm-up on a small input. It prints, per P: the slowest rank's
wall time, the speed-up over P = 1, the pairs per second, and per rank the shard's size and the peak memory
the call added (CPU: the peak RSS sampled during the call minus the RSS before it, with glibc's mmap
threshold fixed at 1 MiB so that freed buffers leave the RSS; GPU: torch.cuda.max_memory_allocated
beyond the shard). With P = 1 it also times the single-process op (fastmmd.kid / fastmmd.mmd2), for the cost
of the ring's bookkeeping, and on a CPU the same op with --single-threads threads (all cores by default).
Rows are appended to bench/results/distributed_<device>.csv with the machine, commit and date. On a CPU with
fewer cores than P × threads the processes share cores: those times measure oversubscription, not scaling,
and are marked so.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List

from bench.records import RESULTS_DIR, append_rows, collect_environment

OPS = ("kid", "mmd2-grad")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class RssPeak:
    """The peak of the resident set during a `with` block, sampled every 2 ms by a thread (the kernels
    release the GIL); `added_mb` is that peak minus the RSS at entry. (getrusage's ru_maxrss is the peak
    of the whole process, which the temporaries of data generation or of imports can set.)"""

    def __enter__(self):
        self.before = self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())

    @property
    def added_mb(self) -> float:
        return self.peak - self.before


def _rows(total: int, rank: int, world: int) -> int:
    return total // world + (1 if rank < total % world else 0)


def _shard(rows: int, d: int, shift: float, seed: int, device, dtype):
    import torch

    gen = torch.Generator(device="cpu").manual_seed(seed)
    t = torch.randn(rows, d, generator=gen, dtype=torch.float32).abs_() + shift
    return t.to(device=device, dtype=dtype)


def _call(op: str, x, y, distributed: bool):
    """One evaluation of the op; returns a float to check the ranks agree."""
    import fastmmd
    import fastmmd.distributed as fd

    if op == "kid":
        result = fd.kid(x, y) if distributed else fastmmd.kid(x, y, subsets=None)
        return float(result.mean)
    xg, yg = x.detach().requires_grad_(True), y.detach().requires_grad_(True)
    kernel = fastmmd.Gaussian(bandwidth=[0.5 * x.shape[1] ** 0.5, x.shape[1] ** 0.5, 2 * x.shape[1] ** 0.5])
    value = fd.mmd2(xg, yg, kernel=kernel) if distributed else fastmmd.mmd2(xg, yg, kernel=kernel)
    value.backward()
    return float(value)


def _timed(fn, cuda: bool) -> float:
    import torch

    started = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - started


def worker(args) -> None:
    """One rank under torchrun: warm up, time the call, send the figures to rank 0, which writes them."""
    import torch
    import torch.distributed as dist

    cuda = args.device == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    dtype = torch.float32

    def sync():
        if cuda:
            torch.cuda.synchronize()
        dist.barrier()

    small_x = _shard(64, args.features, 0.0, 1000 + rank, device, dtype)
    _call(args.op, small_x, small_x + 0.1, True)
    x = _shard(_rows(args.rows, rank, world), args.features, 0.0, 2 * rank, device, dtype)
    y = _shard(_rows(args.rows, rank, world), args.features, 0.05, 2 * rank + 1, device, dtype)
    shard_mb = (x.numel() + y.numel()) * x.element_size() / 2**20
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        allocated_before = torch.cuda.memory_allocated()
    with RssPeak() as rss:
        started = time.perf_counter()
        value = _call(args.op, x, y, True)
        sync()
        seconds = time.perf_counter() - started
    added_mb = (torch.cuda.max_memory_allocated() - allocated_before) / 2**20 if cuda else rss.added_mb
    single_s, threaded_s = None, None
    if world == 1:
        single_s = _timed(lambda: _call(args.op, x, y, False), cuda)
        if not cuda and args.single_threads:
            torch.set_num_threads(args.single_threads)
            threaded_s = _timed(lambda: _call(args.op, x, y, False), cuda)
    mine = {"rank": rank, "seconds": seconds, "shard_mb": shard_mb, "added_mb": added_mb, "value": value,
            "single_s": single_s, "threaded_s": threaded_s}
    everyone: List[Dict] = [None] * world
    dist.all_gather_object(everyone, mine)
    dist.destroy_process_group()
    if rank == 0:
        Path(args.result).write_text(json.dumps(everyone))


def _launch(args, world: int, result: Path) -> List[Dict]:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    if not args.default_malloc:
        # A fixed threshold: buffers of 1 MiB and more are mapped and unmapped, so the RSS follows the live
        # memory. glibc's default raises the threshold after the first large free and then keeps freed
        # buffers of up to 32 MiB in its heap, which the RSS counts for the rest of the process.
        env["MALLOC_MMAP_THRESHOLD_"] = str(1 << 20)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(world),
               "-m", "bench.distributed_scaling", "--worker", "--result", str(result), "--op", args.op,
               "--rows", str(args.rows), "--features", str(args.features), "--device", args.device,
               "--threads", str(args.threads), "--single-threads", str(args.single_threads)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{world} ranks failed:\n{done.stderr[-4000:]}")
    return json.loads(result.read_text())


def _pairs(op: str, n: int) -> float:
    """Kernel pairs the op evaluates (the ring computes each unordered pair within a sample once)."""
    return n * (n - 1) + n * n


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.distributed_scaling", description=__doc__.split("\n")[0])
    parser.add_argument("--op", choices=OPS, default="kid", help="kid: exact KID and its std (polynomial "
                        "kernel); mmd2-grad: unbiased MMD² of a 3-Gaussian mixture, forward + backward")
    parser.add_argument("--rows", type=int, default=16000,
                        help="N = M, rows of x and of y in all (split over the ranks)")
    parser.add_argument("--features", type=int, default=2048, help="d")
    parser.add_argument("--worlds", type=int, nargs="+", default=[1, 2, 4], help="numbers of ranks to run")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per rank")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--single-threads", type=int, default=os.cpu_count() or 1,
                        help="CPU: with 1 rank, also time the single-process op with this many threads (the "
                             "same cores shared by threads instead of processes; 0: not)")
    parser.add_argument("--default-malloc", action="store_true", help="leave glibc's adaptive mmap threshold "
                        "on (RSS then also counts freed buffers its heap keeps)")
    parser.add_argument("--csv", default=None, help="append rows here (default bench/results/distributed_DEVICE.csv)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    import torch

    torch.set_num_threads(args.threads)
    environment = collect_environment(args.device).as_dict()
    cores = os.cpu_count() or 1
    print(f"{args.op}: N = M = {args.rows}, d = {args.features}, float32, {args.threads} thread(s) per rank, on "
          f"{environment['device']} ({cores} cores), commit {environment['commit']}")
    print("ranks | time s | speed-up | pairs/s | shard MB/rank | added MB/rank (max) | note")
    rows, base = [], None
    with tempfile.TemporaryDirectory() as folder:
        for world in args.worlds:
            ranks = _launch(args, world, Path(folder) / f"world{world}.json")
            seconds = max(r["seconds"] for r in ranks)
            base = seconds if world == 1 else base
            speedup = base / seconds if base else float("nan")
            oversubscribed = args.device == "cpu" and world * args.threads > cores
            note = "oversubscribed: ranks share cores" if oversubscribed else ""
            if ranks[0]["single_s"] is not None:
                note = f"single-process op: {ranks[0]['single_s']:.2f} s"
                if ranks[0]["threaded_s"] is not None:
                    note += f", with {args.single_threads} threads: {ranks[0]['threaded_s']:.2f} s"
            values = {r["value"] for r in ranks}
            assert len(values) == 1, f"ranks disagree: {values}"
            shard = max(r["shard_mb"] for r in ranks)
            added = max(r["added_mb"] for r in ranks)
            print(f"{world:5d} | {seconds:6.2f} | {speedup:8.2f} | {_pairs(args.op, args.rows) / seconds:.3g} | "
                  f"{shard:13.1f} | {added:19.1f} | {note}")
            rows.append({"op": args.op, "n": args.rows, "d": args.features, "ranks": world,
                         "threads_per_rank": args.threads,
                         "time_s": round(seconds, 4), "speedup": round(speedup, 3), "shard_mb": round(shard, 1),
                         "added_mb": round(added, 1), "oversubscribed": oversubscribed,
                         "single_process_s": ranks[0]["single_s"],
                         "single_process_threads": args.single_threads,
                         "single_process_threaded_s": ranks[0]["threaded_s"], **environment})
    path = Path(args.csv) if args.csv else RESULTS_DIR / f"distributed_{args.device}.csv"
    append_rows(path, rows)
    print(f"appended {len(rows)} rows to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
