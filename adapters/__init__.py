"""Adapters: per-bank implementations of the ports in ``gateway.ports``.

- ``adapters.formats``    bank file formats (render request files, parse result files)
- ``adapters.crypto``     signature profiles (detached signature files)
- ``adapters.transports`` file transports (SFTP)
- ``adapters.registry``   build the above from a bank profile's plain configuration

Adapters never touch the database and import nothing from ``gateway`` except
``gateway.ports``. Errors are classified here, where the wire is visible (see the error tree
in ``gateway.ports`` and ``adapters.transports.errors``).
"""
