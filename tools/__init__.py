"""Developer tools run from the Makefile (not shipped with any function)."""
