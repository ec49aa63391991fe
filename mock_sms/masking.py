"""Phone numbers never leave this module in full: a mask for display and a salted SHA-256
for matching (duplicates, queries by number)."""

from __future__ import annotations

import hashlib


def mask_phone(phone: str) -> str:
    """``138****5678``; numbers too short to mask safely become ``****``."""
    digits = phone[3:] if phone.startswith("+86") else phone
    if len(digits) < 8:
        return "****"
    return f"{digits[:3]}****{digits[-4:]}"


def phone_hash(salt: bytes, phone: str) -> str:
    """Hex SHA-256 of salt + the 11-digit number (``+86`` stripped)."""
    digits = phone[3:] if phone.startswith("+86") else phone
    return hashlib.sha256(salt + digits.encode("ascii", errors="replace")).hexdigest()
