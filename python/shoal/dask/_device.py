"""The device a Dask worker runs shoal on: the SHOAL_DEVICE environment
variable of the worker process.

    SHOAL_DEVICE=cpu:1     device 1 (see `shoal devices`; SHOAL_CPU_DEVICES
    SHOAL_DEVICE=1         decides how the host's cores form devices)
    SHOAL_DEVICE=cpu:0,1   devices 0 and 1
    unset, "", "all"       the whole host: shoal.Runtime(devices=None)
"""

import os

from ..errors import InvalidArgumentError

ENV = "SHOAL_DEVICE"


def parse_device(text):
    """SHOAL_DEVICE text -> a list of device ids, or None for the whole host."""
    if text is None:
        return None
    spec = str(text).strip().lower()
    if spec.startswith("cpu:"):
        spec = spec[4:]
    elif spec == "cpu":
        spec = ""
    if spec in ("", "all", "host"):
        return None
    ids = []
    for part in spec.split(","):
        part = part.strip()
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise InvalidArgumentError(
                f"{ENV}={text!r}: expected a device id list such as 'cpu:1', "
                "'1', 'cpu:0,1' or '0-3' (or 'all' for the whole host)")
        first, last = int(lo), int(hi) if dash else int(lo)
        if last < first:
            raise InvalidArgumentError(f"{ENV}={text!r}: bad range '{part}'")
        ids.extend(range(first, last + 1))
    if len(set(ids)) != len(ids):
        raise InvalidArgumentError(f"{ENV}={text!r}: a device is named twice")
    return ids


def worker_device(environ=None):
    """The devices of this process (from SHOAL_DEVICE), or None."""
    env = os.environ if environ is None else environ
    return parse_device(env.get(ENV))


def check_device(ids):
    """Raises InvalidArgumentError unless every id exists on this host."""
    if ids is None:
        return
    from .. import devices

    have = [d.id for d in devices()]
    bad = [i for i in ids if i not in have]
    if bad:
        raise InvalidArgumentError(
            f"{ENV}: device(s) {bad} do not exist on this host; its devices are "
            f"{have} (SHOAL_CPU_DEVICES={os.environ.get('SHOAL_CPU_DEVICES', '')!r})")


def describe(ids):
    return "the whole host" if ids is None else "cpu:" + ",".join(map(str, ids))
