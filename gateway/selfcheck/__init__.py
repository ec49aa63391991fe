"""The self-check (自查, Article 11 (二) and Article 15 of the county measures): a report,
at least once a quarter, of payments that look wrong — one account for several people, the
same subsidy paid twice, repeated name mismatches on an account, an account changed shortly
before a payment, a birth date that does not fit the subsidy.

- ``service``: ``run_selfcheck``, ``list_reports``, ``get_report``, ``list_findings``,
  ``selfcheck_step`` (the worker's quarterly run), ``KIND_LABELS``;
- ``export``: ``export_xlsx`` (one sheet per kind and a summary, masked);
- ``config``: ``SelfCheckConfig`` (thresholds and age rules, ``GATEWAY_SELFCHECK_FILE``);
- ``models``: ``selfcheck_reports`` and ``selfcheck_findings``;
- the ``gateway selfcheck run|export`` commands are in ``gateway.commands.selfcheck``.

This module imports nothing (``gateway.models`` imports ``gateway.selfcheck.models`` in
every process); import from the submodules.
"""
