# bench-metrics in a container: `docker build -t bench-metrics .`, then
# `docker run -p 9464:9464 bench-metrics` runs the demo with its exporter on
# all interfaces of the container (docker-compose.yml does this for you).
#
# Two stages: wheels are built where a compiler exists (some dependencies,
# e.g. hdrhistogram, ship no wheel for every platform), and the runtime image
# gets only the installed package, no compiler.

# Python minor version pinned to the project's floor (requires-python >= 3.11).
ARG PYTHON_IMAGE=python:3.11-slim-trixie

FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY registry ./registry
COPY exporter ./exporter
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels bench-metrics \
    && rm -rf /wheels \
    && useradd --create-home --uid 10001 bench \
    && install -d -o bench -g bench /home/bench/runs
USER bench
WORKDIR /home/bench
EXPOSE 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=2)"]
ENTRYPOINT ["bench-metrics"]
CMD ["demo", "--listen", "0.0.0.0:9464", "--no-tui"]
