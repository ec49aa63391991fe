"""Mock bank: an independent simulator of a paying agent bank (代发金融机构).

It serves an SFTP inbox/outbox, takes signed ``fw-gb18030-v1`` payment request files, decides
each item from its own account registry and rules, records every credit in its own ledger and
writes signed result files (回盘). It never imports ``gateway`` or ``adapters``: it implements
the bank file format from ``docs/formats/fw-gb18030-v1.md`` with its own code, so that a
format bug on the gateway side shows up as a failure rather than as agreement.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
