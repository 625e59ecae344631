"""The small core every function imports: config, request parsing, errors, HTTP, logs, metrics."""
