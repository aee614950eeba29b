"""Client-side input checks (the same rules and messages as shoal.Runtime),
so that a bad batch fails here, before anything is sent to the cluster."""

import numpy as np

from ..errors import DTypeError, InvalidArgumentError


def _batch_shape(shape):
    return "(" + ", ".join(["N"] + [str(d) for d in shape[1:]]) + ")"


def normalize(infos, x):
    """x (an array, a list/tuple in model order, or a dict by input name) ->
    (list of C-contiguous arrays, batch size N)."""
    names = [i.name for i in infos]
    if isinstance(x, dict):
        unknown = sorted(set(x) - set(names))
        missing = [n for n in names if n not in x]
        if unknown or missing:
            raise InvalidArgumentError(
                f"inputs by name: the model's inputs are {names}; "
                f"missing {missing}, unknown {unknown}")
        items = [x[n] for n in names]
    elif isinstance(x, (list, tuple)):
        items = list(x)
    else:
        items = [x]
    if len(items) != len(infos):
        raise InvalidArgumentError(
            f"the model has {len(infos)} input(s) {names}, got {len(items)}")
    arrays, batch = [], None
    for info, a in zip(infos, items):
        a = np.asarray(a)
        if a.dtype != info.dtype:
            raise DTypeError(
                f"input '{info.name}': expected dtype {info.dtype}, got {a.dtype} "
                f"(convert with .astype(numpy.{info.dtype}))")
        want = tuple(info.shape)
        if a.ndim != len(want) or a.ndim == 0 or a.shape[0] < 1 or \
                a.shape[1:] != want[1:]:
            raise InvalidArgumentError(
                f"input '{info.name}': expected shape {_batch_shape(want)} with "
                f"batch N >= 1 (one sample: {want}), got {a.shape}")
        if batch is None:
            batch = a.shape[0]
        elif a.shape[0] != batch:
            raise InvalidArgumentError(
                f"input '{info.name}': batch {a.shape[0]} differs from the "
                f"first input's batch {batch}")
        arrays.append(np.ascontiguousarray(a))  # row slices stay contiguous
    return arrays, batch


def sample_bytes(infos):
    """Bytes of one sample over all inputs."""
    total = 0
    for info in infos:
        n = 1
        for d in tuple(info.shape)[1:]:
            n *= int(d)
        total += n * np.dtype(info.dtype).itemsize
    return max(1, total)
