"""Reliability and security measurements of the judge and chat services.

Every check starts the real services as subprocesses on 127.0.0.1, drives
them over HTTP and measures: fuzzing (``fuzz``), load (``load``), faults
(``faults``) and security (``security``). ``python -m reliability.run``
runs the full set and prints the figures; ``tests/reliability`` runs short
versions of the same code in ``make test``.

Errors::

    ReliabilityError           base
    ├── ServiceStartError      a service did not become ready; has its log
    └── NotLoopbackError       a target URL is not 127.0.0.1 (refused)
"""

from __future__ import annotations


class ReliabilityError(Exception):
    """Base of this package's errors."""


class ServiceStartError(ReliabilityError):
    """A service did not become ready; the message carries its log tail."""


class NotLoopbackError(ReliabilityError, ValueError):
    """The load and fault scripts drive 127.0.0.1 only, never a remote host."""
