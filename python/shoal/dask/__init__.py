"""shoal on a Dask cluster: one worker per device, no input lost.

    from distributed import Client
    import shoal, shoal.dask

    client = Client("tcp://scheduler:8786")
    with shoal.dask.DaskRuntime(client, shoal.load("model.shoal")) as rt:
        (logits,) = rt.run(x)                 # x: (N, C, H, W) float32
        for (y,) in rt.imap(batches):         # streaming, bounded memory
            ...

Workers (one per device; SHOAL_DEVICE picks the device of the worker):

    python -m shoal.dask worker tcp://scheduler:8786 --device cpu:1
    SHOAL_DEVICE=cpu:1 dask-worker tcp://scheduler:8786 --nthreads 1

The program's bytes go to each worker once (scattered with broadcast); each
worker loads them once onto its device and keeps the runtime. Chunks of the batch
are scattered to the workers (numpy buffers travel out of band, without
copies), run, and gathered back in input order. See docs/DISTRIBUTED.md.
"""

from ._device import parse_device, worker_device
from ._errors import ClusterError, NoWorkersError
from ._runtime import DaskRuntime
from .tls import make_certificates, tls_security

__all__ = [
    "DaskRuntime",
    "ClusterError",
    "NoWorkersError",
    "parse_device",
    "worker_device",
    "tls_security",
    "make_certificates",
]
