"""Errors of shoal.dask: shoal errors (shoal.Error subclasses) for cluster
failures, so ``except shoal.Error`` catches them as it does local ones."""

from ..errors import DeviceError


class ClusterError(DeviceError):
    """A job on a Dask cluster failed: a chunk could not be computed (its
    worker kept dying, its inputs were lost too often) or the cluster broke."""


class NoWorkersError(ClusterError, TimeoutError):
    """The cluster had no (suitable) worker for longer than the timeout while
    a job still had chunks to run; also a TimeoutError."""
