"""Who acted: the rules that make one person one name, in every channel.

A person acts under their dashboard account's login name (the *actor key*), whether on the
dashboard or on the command line. Two spellings that look alike are one name:

- ``actor_key`` folds a name with Unicode NFKC and case folding (``ＡＬＩＣＥ``, ``Alice``
  and ``alice`` are one key) and drops format characters (category Cf: zero-width spaces,
  soft hyphens, byte-order marks, bidi controls), control characters and lone surrogates;
- ``name_problem`` says why a name must be refused outright: control characters (Cc),
  format characters (Cf) and lone surrogates (Cs) are never part of a name, so
  ``alice\\u200b`` is refused where it is given (account creation, login, an operator name)
  rather than silently treated as a new person;
- ``same_actor`` is the maker-checker comparison: equal keys are one person.

Pure functions, used by the accounts (``gateway.dashboard.accounts``) and by every service
that records who acted (``gateway.rework.audit``)."""

from __future__ import annotations

import unicodedata

# categories never allowed in a name: control, format (invisible), lone surrogates
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})


def _visible(value: str) -> str:
    return "".join(c for c in value if unicodedata.category(c) not in REFUSED_CATEGORIES)


def actor_key(name: str) -> str:
    """The comparison form of a name: format and control characters and lone surrogates
    removed, NFKC, case-folded (then NFKC again, since folding can leave a string
    unnormalised), blanks around it stripped. Always storable text."""
    folded = unicodedata.normalize("NFKC", _visible(name))
    folded = unicodedata.normalize("NFKC", folded.casefold())
    return _visible(folded).strip()


def name_problem(name: str) -> str | None:
    """``control_character``, ``format_character`` or ``surrogate`` when ``name`` holds a
    character no name may hold; None otherwise."""
    for c in name:
        category = unicodedata.category(c)
        if category == "Cc":
            return "control_character"
        if category == "Cf":
            return "format_character"
        if category == "Cs":
            return "surrogate"
    return None


def same_actor(a: str, b: str) -> bool:
    """Maker-checker: one person, however the name is spelled (width, case, invisible
    characters)."""
    return actor_key(a) == actor_key(b)
