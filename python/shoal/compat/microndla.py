"""The SDK's later name: ``microndla.MDLA`` is :class:`shoal.compat.fwdnxt.FWDNXT`."""

from .fwdnxt import FWDNXT, SDK_FLAGS

MDLA = FWDNXT

__all__ = ["MDLA", "FWDNXT", "SDK_FLAGS"]
