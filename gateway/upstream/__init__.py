"""Results upstream (结果反馈): every batch and item outcome reported back to the finance
system, by two channels that carry the same changes under the same ids:

- a **pull API** (``GET /v1/changes``) with an opaque change cursor, so upstream never
  misses an outcome even if every webhook fails (``feed.py``, ``endpoints.py``);
- **signed webhooks** in the Standard Webhooks format, staged in an outbox in the same
  transaction as the change they carry, delivered by the worker with retries, backoff and a
  delivery log (``signing.py``, ``delivery.py``).

``service.upstream_step`` is the worker step; ``service.summary`` the demo figures.
This package's ``__init__`` imports nothing, so that ``gateway.settings`` may import
``gateway.upstream.config`` without a cycle.
"""
