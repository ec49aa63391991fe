"""Bank file formats (``gateway.ports.BankFormat`` implementations)."""

from adapters.formats.fixed_width import FixedWidthGb18030Format

__all__ = ["FixedWidthGb18030Format"]
