"""The HTTP side of the exporter (SPEC §8): the aiohttp server for ``/metrics``,
``/healthz`` and ``/``, listen addresses, request limits, the request log and the
exporter-toolkit web config (TLS, basic auth). It serves; it never computes."""
