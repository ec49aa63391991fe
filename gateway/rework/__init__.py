"""Failed payments, correction and re-issue (Article 10 (十)(十一) of the county measures).

- ``corrections``: correction lists (更正清单) as printable XLSX for the township stations,
  and "mark as returned for correction" (failed → returned);
- ``history``: a person's payments across batches, with the re-issue chains;
- ``refunds``: treasury refunds (退回国库) with maker-checker;
- ``audit``: the audit log of queries and important operations;
- ``scope``: the region scope of who asks, as SQL.

The ``gateway corrections|refunds|history`` commands are in ``gateway.commands.rework``
(they log in with a dashboard account, above this package).

Re-issue itself is intake's work (``reissue_of`` in an upstream batch, checked by
``gateway.batches.service``); this package prepares it and shows it.

This module imports nothing: ``gateway.models`` imports ``gateway.rework.models`` in every
process, and the exports (openpyxl) should not load with it. Import from the submodules.
"""
