"""File transports (``gateway.ports.FileTransport`` implementations)."""

from adapters.transports.errors import RemoteExistsError, RemoteNotFoundError, RemoteRefusedError
from adapters.transports.sftp import SftpTransport

__all__ = ["RemoteExistsError", "RemoteNotFoundError", "RemoteRefusedError", "SftpTransport"]
