"""Compatibility layers for code written against older inference SDKs.

:mod:`shoal.compat.fwdnxt` (alias :mod:`shoal.compat.microndla`) provides the
FWDNXT/MDLA Python API (Compile, Init, Run, PutInput, GetResult, SetFlag,
GetInfo, Free) on top of shoal's CPU devices. See docs/DEVICES.md for what
each call does here.
"""

__all__ = ["fwdnxt", "microndla"]
