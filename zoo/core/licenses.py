"""The Hugging Face Hub's license identifiers, for ``hub.license`` and the model card.

From the Hub's documentation (https://huggingface.co/docs/hub/repositories-licenses);
``other`` needs a ``license_name``. Importing this module imports nothing heavy.
"""

from __future__ import annotations

import re

#: Every identifier the Hub accepts in a card's ``license:`` field.
HUB_LICENSES = frozenset({
    "apache-2.0", "mit", "openrail", "bigscience-openrail-m", "creativeml-openrail-m",
    "bigscience-bloom-rail-1.0", "bigcode-openrail-m", "afl-3.0", "artistic-2.0", "bsl-1.0", "bsd",
    "bsd-2-clause", "bsd-3-clause", "bsd-3-clause-clear", "c-uda", "cc", "cc0-1.0", "cc-by-2.0",
    "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0", "cc-by-sa-4.0", "cc-by-nc-2.0",
    "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0", "cc-by-nc-nd-4.0",
    "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "cdla-sharing-1.0",
    "cdla-permissive-1.0", "cdla-permissive-2.0", "wtfpl", "ecl-2.0", "epl-1.0", "epl-2.0",
    "etalab-2.0", "eupl-1.1", "eupl-1.2", "agpl-3.0", "gfdl", "gpl", "gpl-2.0", "gpl-3.0", "lgpl",
    "lgpl-2.1", "lgpl-3.0", "isc", "h-research", "intel-research", "lppl-1.3c", "ms-pl",
    "apple-ascl", "apple-amlr", "mpl-2.0", "odc-by", "odbl", "openmdw-1.0", "openrail++",
    "osl-3.0", "postgresql", "ofl-1.1", "ncsa", "unlicense", "zlib", "pddl", "lgpl-lr",
    "deepfloyd-if-license", "fair-noncommercial-research-license", "llama2", "llama3", "llama3.1",
    "llama3.2", "llama3.3", "llama4", "grok2-community", "gemma", "unknown", "other",
})
#: A ``license_name`` for ``license: other``: a short lowercase slug, as the Hub shows it.
LICENSE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,62}[a-z0-9])?")


def license_problem(license: str, license_name: str | None) -> str | None:
    """Why ``license``/``license_name`` cannot go into a Hub card, or ``None`` if they can."""
    if license not in HUB_LICENSES:
        import difflib

        close = difflib.get_close_matches(str(license).lower(), sorted(HUB_LICENSES), n=1)
        hint = (f"did you mean {close[0]!r}?" if close else
                "e.g. mit, apache-2.0, cc-by-4.0; or 'other' with license_name")
        return f"license {license!r} is not a Hub license identifier ({hint})"
    if license == "other" and not license_name:
        return "license 'other' needs license_name, a short name for it (e.g. 'my-license')"
    if license_name is not None and not LICENSE_NAME.fullmatch(license_name):
        return (f"license_name {license_name!r} must be a short lowercase name of letters, "
                f"digits, dots and dashes (e.g. 'my-license')")
    if license_name is not None and license != "other":
        return f"license_name applies to license 'other', not to {license!r}"
    return None
