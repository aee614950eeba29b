"""Client-side input checks, so that a bad batch fails here, before anything
is sent to the cluster: the program's own check (Program.check_inputs, the
one shoal.Runtime runs), after the argument forms are sorted out."""

import numpy as np

from ..errors import InvalidArgumentError


def normalize(program, x):
    """x (an array, a list/tuple in model order, or a dict by input name) ->
    (list of C-contiguous arrays, batch size N)."""
    names = [i.name for i in program.inputs]
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
    arrays = [np.ascontiguousarray(a) for a in items]  # row slices stay contiguous
    batch = program.check_inputs(arrays)
    if batch < 1:
        raise InvalidArgumentError("a batch sent to the cluster needs at least one sample, got 0")
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
