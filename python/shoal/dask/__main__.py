"""Command line of shoal.dask (also reached as `shoal worker` / `shoal run
--scheduler`, which forward here):

    python -m shoal.dask worker SCHEDULER [--device cpu:1] [--nthreads 1]
                                [DASK-WORKER OPTIONS...]
    python -m shoal.dask run --scheduler ADDRESS PROGRAM INPUT.npy [...]
                             [-o OUT.npy] [--chunk-size N] [--no-progress]

`worker` checks the device, sets SHOAL_DEVICE and becomes a dask-worker
(every option it does not know goes to dask-worker: --no-nanny, --host,
--tls-ca-file, --name, ...). `run` classifies .npy inputs on the cluster and
writes the outputs like `shoal run`.
"""

import argparse
import json
import os
import sys
import time

USAGE_EXIT, ERROR_EXIT = 2, 1


def _fail(message, code=ERROR_EXIT):
    print(f"shoal: error: {message}", file=sys.stderr)
    return code


# ---- worker ------------------------------------------------------------------

# dask-worker options that take a value (used when its own command cannot be
# inspected): needed to tell an option's value from the scheduler address.
_DASK_WORKER_VALUE_OPTIONS = {
    "--tls-ca-file", "--tls-cert", "--tls-key", "--worker-port", "--nanny-port",
    "--dashboard-address", "--listen-address", "--contact-address", "--host",
    "--interface", "--protocol", "--nthreads", "--nworkers", "--name",
    "--memory-limit", "--pid-file", "--local-directory", "--resources",
    "--scheduler-file", "--death-timeout", "--dashboard-prefix", "--lifetime",
    "--lifetime-stagger", "--worker-class", "--preload", "--preload-nanny",
    "--scheduler-sni"}


def _value_options():
    try:
        from distributed.cli.dask_worker import main as dask_worker

        found = {o for p in dask_worker.params
                 if getattr(p, "param_type_name", "") == "option" and not p.is_flag
                 for o in p.opts}
        return found or _DASK_WORKER_VALUE_OPTIONS
    except Exception:
        return _DASK_WORKER_VALUE_OPTIONS


def _split_scheduler(rest):
    """dask-worker arguments -> (the scheduler address or None, the others in
    their order): the first argument that is neither an option nor the value
    of one, wherever it stands (`--name w0 tcp://...` as well)."""
    values = _value_options()
    i = 0
    while i < len(rest):
        a = rest[i]
        if a == "--":
            break
        if a.startswith("-"):
            i += 2 if ("=" not in a and a in values) else 1
            continue
        return a, rest[:i] + rest[i + 1:]
    return None, list(rest)


def worker(argv):
    p = argparse.ArgumentParser(
        prog="shoal worker", allow_abbrev=False,
        usage="shoal worker [SCHEDULER | --scheduler-file PATH] [--device DEVICE] "
              "[--nthreads N] [--dry-run] [DASK-WORKER OPTIONS...]",
        description="Starts a Dask worker that runs shoal on one device. Options "
                    "not listed here go to dask-worker (see dask-worker --help), "
                    "e.g. --no-nanny, --host 127.0.0.1, --name, --tls-ca-file.",
        epilog="The device numbering follows SHOAL_CPU_DEVICES (see `shoal devices`).")
    p.add_argument("--device", default=os.environ.get("SHOAL_DEVICE", ""),
                   help="device(s) of this worker: cpu:1, 1, cpu:0,1, or 'all' for "
                        "the whole host (default: $SHOAL_DEVICE, else all)")
    p.add_argument("--nthreads", type=int, default=1,
                   help="task threads (1: one chunk at a time on the device)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the dask-worker command line and exit")
    # SCHEDULER (e.g. tcp://10.0.0.1:8786) is found by hand: as an argparse
    # positional it would take the value of an option argparse does not know
    # (`--scheduler-file PATH`, `--name W0 tcp://...`).
    args, rest = p.parse_known_args(argv)
    args.scheduler, rest = _split_scheduler(rest)
    if args.scheduler is None and not any(a.startswith("--scheduler-file") for a in rest):
        p.print_usage(sys.stderr)
        return _fail("give the scheduler address (or --scheduler-file)", USAGE_EXIT)
    if args.nthreads < 1:
        return _fail(f"--nthreads must be >= 1, got {args.nthreads}", USAGE_EXIT)

    from .. import Error
    from . import _device

    try:
        ids = _device.parse_device(args.device)
        _device.check_device(ids)
    except Error as e:
        return _fail(str(e).replace(_device.ENV, "--device", 1), USAGE_EXIT)
    if ids is None:
        os.environ.pop(_device.ENV, None)
    else:
        os.environ[_device.ENV] = _device.describe(ids)

    cmd = [sys.executable, "-m", "distributed.cli.dask_worker"]
    if args.scheduler:
        cmd.append(args.scheduler)
    cmd += ["--nthreads", str(args.nthreads)]
    if not any(a.startswith("--resources") for a in rest):
        cmd += ["--resources", "shoal=1"]  # see DaskRuntime(resources=...)
    cmd += rest
    print(f"shoal worker: {_device.describe(ids)}, SHOAL_CPU_DEVICES="
          f"{os.environ.get('SHOAL_CPU_DEVICES', '')!r}: {' '.join(cmd[1:])}",
          file=sys.stderr, flush=True)
    if args.dry_run:
        print(" ".join(cmd))
        return 0
    os.execv(cmd[0], cmd)  # the worker keeps this process id


# ---- run ---------------------------------------------------------------------

def _security(args):
    tls = [args.tls_ca_file, args.tls_cert, args.tls_key]
    if not any(tls):
        return None
    if not args.tls_ca_file or not args.tls_cert:
        raise SystemExit(_fail("TLS needs --tls-ca-file and --tls-cert "
                               "(and --tls-key unless the key is in the cert)",
                               USAGE_EXIT))
    from .tls import tls_security

    return tls_security(args.tls_ca_file, args.tls_cert, args.tls_key)


def _output_paths(out, count):
    root, ext = os.path.splitext(out)
    ext = ext or ".npy"
    return [out if i == 0 else f"{root}_{i}{ext}" for i in range(count)]


def run(argv):
    p = argparse.ArgumentParser(
        prog="shoal run",
        description="Runs a program on .npy inputs (one per model input, a batch "
                    "N x the input's shape without its batch dim) across the "
                    "workers of a Dask cluster.")
    p.add_argument("--scheduler", required=True, help="e.g. tcp://10.0.0.1:8786")
    p.add_argument("program", help="program file (shoal compile)")
    p.add_argument("inputs", nargs="+", help="one .npy per model input")
    p.add_argument("-o", "--output", help="write output 0 to OUT.npy, output i "
                   "to OUT_i.npy")
    p.add_argument("--chunk-size", type=int, help="samples per task")
    p.add_argument("--max-in-flight", type=int, help="chunks out at once")
    p.add_argument("--timeout", type=float, help="seconds the job may take")
    p.add_argument("--no-workers-timeout", type=float, default=60.0,
                   help="fail when the cluster has had no worker this long (60)")
    p.add_argument("--connect-timeout", type=float, default=30.0,
                   help="seconds to reach the scheduler (30)")
    p.add_argument("--resources", default="",
                   help="Dask resources per task, e.g. shoal=1 (workers started "
                        "by `shoal worker` have shoal=1)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--tls-ca-file", help="CA certificate (PEM) for a tls:// scheduler")
    p.add_argument("--tls-cert", help="this client's certificate (PEM)")
    p.add_argument("--tls-key", help="its private key (PEM), unless in --tls-cert")
    args = p.parse_args(argv)
    for name in ("chunk_size", "max_in_flight"):
        value = getattr(args, name)
        if value is not None and value < 1:
            return _fail(f"--{name.replace('_', '-')} must be >= 1, got {value}", USAGE_EXIT)

    import numpy as np
    from distributed import Client

    from .. import Error
    from ._runtime import DaskRuntime

    resources = {}
    for item in filter(None, args.resources.split(",")):
        name, _, value = item.partition("=")
        try:
            resources[name.strip()] = float(value or 1)
        except ValueError:
            return _fail(f"--resources: bad item '{item}'", USAGE_EXIT)
    try:
        inputs = [np.load(path, mmap_mode="r") for path in args.inputs]
    except (OSError, ValueError) as e:
        return _fail(f"cannot read input: {e}")
    security = _security(args)
    try:
        client = Client(args.scheduler, security=security, timeout=args.connect_timeout)
    except (OSError, TimeoutError, ValueError) as e:  # ValueError: a bad address
        return _fail(f"cannot reach the scheduler at {args.scheduler}: {e}")
    try:
        with DaskRuntime(client, args.program, chunk_size=args.chunk_size,
                         max_in_flight=args.max_in_flight,
                         progress=not args.no_progress, timeout=args.timeout,
                         no_workers_timeout=args.no_workers_timeout,
                         resources=resources or None) as rt:
            t0 = time.perf_counter()
            outputs = rt.run(inputs)
            seconds = time.perf_counter() - t0
            stats, workers = dict(rt.stats), rt.workers()
    except (Error, OSError) as e:
        return _fail(str(e))
    finally:
        client.close()

    infos = list(rt.program.outputs)
    paths = _output_paths(args.output, len(outputs)) if args.output else []
    for path, y in zip(paths, outputs):
        np.save(path, y)
    n = len(outputs[0]) if outputs else 0
    if args.json:
        print(json.dumps({
            "outputs": [{"name": i.name, "shape": list(y.shape), "dtype": str(y.dtype),
                         **({"file": f} if f else {})}
                        for i, y, f in zip(infos, outputs, paths + [None] * len(outputs))],
            "samples": n, "seconds": seconds, "workers": len(workers),
            "chunks": stats.get("chunks"), "resent": stats.get("resent")}))
        return 0
    print(f"{n} samples on {len(workers)} worker(s) in {seconds:.3f} s "
          f"({n / max(seconds, 1e-9):.1f} samples/s, {stats.get('chunks')} chunks"
          f"{', %d resent' % stats['resent'] if stats.get('resent') else ''})")
    for i, (info, y) in enumerate(zip(infos, outputs)):
        where = f" -> {paths[i]}" if paths else ""
        print(f"output {i} '{info.name}': shape {tuple(y.shape)} {y.dtype}{where}")
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    commands = {"worker": worker, "run": run}
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else USAGE_EXIT
    if argv[0] not in commands:
        return _fail(f"unknown command '{argv[0]}' (worker or run)", USAGE_EXIT)
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
