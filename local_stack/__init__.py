"""The embedded local stack: moto, a Nylas simulator, the REST API over HTTP and the queue poller (make demo/serve)."""
