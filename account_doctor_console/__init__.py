"""The operator console (SPEC §8b): a web page on 127.0.0.1 over the read API's core, outside the Lambda layer."""

# `account-doctor console` and `make serve` serve it here unless told otherwise (`--port`).
DEFAULT_PORT = 8321
