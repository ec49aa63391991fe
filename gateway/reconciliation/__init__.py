"""Reconciliation (对账): every item sent has exactly one outcome, the bank's money ties out
against the paid items, every mismatch is a discrepancy a person explains and closes, and a
daily statement per bank and payer account.

- ``matching``: the pure part (classify, tally, match money, name mismatches);
- ``service``: ``reconcile`` (one incremental run, for the worker), ``summary`` (for the
  demo), ``explain`` / ``close`` (a person's lifecycle of a discrepancy);
- ``statements``: ``write_statement`` (CSV and XLSX);
- ``models``: ``discrepancies`` and their events, stream cursors, entry links.
"""
