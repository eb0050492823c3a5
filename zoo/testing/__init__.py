"""Test helpers that plugin authors may reuse: the conformance kit (``check_family``,
``assert_conforms``; see :mod:`zoo.testing.conformance`) and a loopback Hugging Face
Hub (``hubserver``). Importing this package does not import torch."""

from zoo.testing.conformance import Check, assert_conforms, check_family

__all__ = ["Check", "assert_conforms", "check_family"]
