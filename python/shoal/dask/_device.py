"""The device a Dask worker runs shoal on: the SHOAL_DEVICE environment
variable of the worker process, devices as kind:index (see `shoal devices`).

    SHOAL_DEVICE=cpu:1         cpu device 1 (SHOAL_CPU_DEVICES decides how
    SHOAL_DEVICE=1             the host's cores form devices); a plain number is an id
    SHOAL_DEVICE=cpu:0,1       cpu devices 0 and 1 (a kind applies to the numbers after it)
    SHOAL_DEVICE=ref:0         the ref device (reference kernels, for debugging)
    SHOAL_DEVICE=cpu:0,ref:0   both, one runtime across kinds
    unset, "", "all"           the whole host: shoal.Runtime(devices=None)
"""

import os
import re

from ..errors import InvalidArgumentError

ENV = "SHOAL_DEVICE"


def _kinds():
    """The device kinds of this build (those with devices on this host)."""
    from .. import devices

    try:
        return {"cpu"} | {d.kind for d in devices()}
    except Exception:  # a bad SHOAL_CPU_DEVICES is reported where devices are used
        return {"cpu", "ref"}


def parse_device(text):
    """SHOAL_DEVICE text -> a list of devices (cpu devices as ids, which are
    their indices; others as "kind:index" names), or None for the whole host."""
    if text is None:
        return None
    spec = str(text).strip().lower()
    if spec == "cpu":
        spec = ""
    if spec in ("", "all", "host"):
        return None
    out = []
    kind = "cpu"
    for part in spec.split(","):
        part = part.strip()
        m = re.fullmatch(r"([a-z][a-z0-9_]*):(.*)", part)
        if m:
            kind, part = m.group(1), m.group(2).strip()
            if kind not in _kinds():
                raise InvalidArgumentError(
                    f"{ENV}={text!r}: no device kind '{kind}' (kinds: "
                    f"{', '.join(sorted(_kinds()))})")
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise InvalidArgumentError(
                f"{ENV}={text!r}: expected a device list such as 'cpu:1', "
                "'1', 'cpu:0,1', 'ref:0' or '0-3' (or 'all' for the whole host)")
        first, last = int(lo), int(hi) if dash else int(lo)
        if last < first:
            raise InvalidArgumentError(f"{ENV}={text!r}: bad range '{part}'")
        out.extend(i if kind == "cpu" else f"{kind}:{i}" for i in range(first, last + 1))
    if len(set(out)) != len(out):
        raise InvalidArgumentError(f"{ENV}={text!r}: a device is named twice")
    return out


def worker_device(environ=None):
    """The devices of this process (from SHOAL_DEVICE), or None."""
    env = os.environ if environ is None else environ
    return parse_device(env.get(ENV))


def check_device(ids):
    """Raises InvalidArgumentError unless every device exists on this host."""
    if ids is None:
        return
    from .. import devices

    have = devices()
    names = {d.name for d in have} | {d.id for d in have if d.kind == "cpu"}
    bad = [i for i in ids if i not in names]
    if bad:
        raise InvalidArgumentError(
            f"{ENV}: device(s) {bad} do not exist on this host; its devices are "
            f"{[d.name for d in have]} "
            f"(SHOAL_CPU_DEVICES={os.environ.get('SHOAL_CPU_DEVICES', '')!r})")


def describe(ids):
    if ids is None:
        return "the whole host"
    return ",".join(f"cpu:{i}" if isinstance(i, int) else i for i in ids)
