"""Reproduce the OpenVINO binding stall that `ovms_double.binding.prime` prevents (bench/notes.md).

Starts the person-detection model (from the launcher's model cache), then many threads that make
their first inference at the same moment, each through a shared pool of infer requests, and watches
progress. Each run is a fresh process (the stall happens only on a process's first inferences);
a run with no inference for 10 s counts as hung and is killed.

    python -m bench.stall_repro --runs 30            # cold start: some runs hang
    python -m bench.stall_repro --runs 30 --prime    # one single-threaded inference first: none
"""

from __future__ import annotations

import argparse
import os
import queue
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from launcher.paths import cache_dir

CHILD_TIMEOUT_S = 60.0


def _child(threads: int, seconds: float, prime: bool) -> int:
    import numpy as np
    import openvino as ov

    from ovms_double.binding import prime as prime_binding

    xml = cache_dir() / "models" / "person-detection" / "1" / "model.xml"
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(xml)), "CPU", {"PERFORMANCE_HINT": "THROUGHPUT"})
    if prime:
        prime_binding(compiled)
    idle: queue.SimpleQueue = queue.SimpleQueue()
    for _ in range(int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))):
        idle.put(compiled.create_infer_request())
    shape = tuple(compiled.inputs[0].get_partial_shape().get_min_shape())
    frame = np.random.default_rng().integers(0, 255, shape, dtype=np.uint8)
    done = [0]
    stop = threading.Event()

    def predict() -> None:
        request = idle.get()
        try:
            request.infer({0: np.ascontiguousarray(frame.copy())}, share_inputs=True)
            [request.get_output_tensor(i).data.copy() for i in range(len(compiled.outputs))]
        finally:
            idle.put(request)
        done[0] += 1

    def stream() -> None:  # as client/pipeline.py does: each frame a task on the stream's own pool
        with ThreadPoolExecutor(max_workers=4) as pool:
            pending: list[Future] = []
            while not stop.is_set():
                pending.append(pool.submit(predict))
                if len(pending) >= 4:
                    pending.pop(0).result()

    for _ in range(threads):
        threading.Thread(target=stream, daemon=True).start()
    start, last, last_at = time.monotonic(), -1, time.monotonic()
    while time.monotonic() - start < seconds:
        time.sleep(0.5)
        if done[0] != last:
            last, last_at = done[0], time.monotonic()
        elif time.monotonic() - last_at > 10:
            print(f"hung after {done[0]} inferences", flush=True)
            return 3
    stop.set()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10, help="fresh processes to start (default 10)")
    parser.add_argument("--threads", type=int, default=16, help="threads per process (default 16)")
    parser.add_argument("--seconds", type=float, default=60, help="how long each run infers (default 60)")
    parser.add_argument("--prime", action="store_true", help="one single-threaded inference first")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        code = _child(args.threads, args.seconds, args.prime)
        sys.stdout.flush()
        os._exit(code)  # no interpreter teardown under threads still inside OpenVINO
    hung = 0
    for run in range(1, args.runs + 1):
        command = [sys.executable, "-m", "bench.stall_repro", "--child", f"--threads={args.threads}"]
        command += [f"--seconds={args.seconds}"] + (["--prime"] if args.prime else [])
        try:
            code = subprocess.run(command, timeout=args.seconds + CHILD_TIMEOUT_S, check=False).returncode
        except subprocess.TimeoutExpired:
            code = 3
        hung += code == 3
        print(f"run {run}/{args.runs}: {'HUNG' if code == 3 else 'ok' if code == 0 else f'exit {code}'}")
    print(f"{'primed' if args.prime else 'cold'}: hung {hung}/{args.runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
