"""Test helpers that plugin authors may reuse: a loopback Hugging Face Hub (``hubserver``)."""
