"""Model providers, one module each, behind the ``Provider`` protocol."""
