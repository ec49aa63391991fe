"""Transport errors the adapters add below ``gateway.ports.TransportError``.

Tree (ports classes in brackets)::

    [TransportError]
    ├── [NeverSentError]
    ├── [OutcomeUnknownError]
    │   └── RemoteExistsError      the final name already exists on the server; it may be
    │                              our own earlier upload (whose rename reply was lost) or
    │                              someone else's: inquire (compare size/hash), never
    │                              overwrite. An OutcomeUnknownError so that code handling
    │                              only the ports' classes takes the safe path.
    ├── [HostKeyError]
    └── RemoteRefusedError         the server answered a read/remove with an error status
        │                          (permission denied, failure): the operation did not
        │                          happen and repeating it will not help until someone
        │                          fixes the server side or the configuration
        └── RemoteNotFoundError    the file or directory does not exist
"""

from __future__ import annotations

from gateway.ports import OutcomeUnknownError, RemoteFile, TransportError


class RemoteExistsError(OutcomeUnknownError):
    """``put_atomic`` found the final name already taken; ``existing`` is what is there."""

    def __init__(self, message: str, *, existing: RemoteFile | None = None) -> None:
        super().__init__(message)
        self.existing = existing


class RemoteRefusedError(TransportError):
    """The server refused a read or remove with an error status (definitive answer)."""


class RemoteNotFoundError(RemoteRefusedError):
    """The remote file or directory does not exist."""
