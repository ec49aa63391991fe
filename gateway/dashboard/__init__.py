"""The operators' dashboard (运营看板): server-rendered pages for operators, supervisors,
auditors and account administrators, mounted under ``/dashboard`` of the gateway."""
