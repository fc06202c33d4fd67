# syntax=docker/dockerfile:1
# The processor, `python -m market_data_tick_handler.main`, with the Node ingester it spawns (Node 20 and
# ingest-node with its node_modules), for every service of docker-compose.yml but redis and the emulator.
#   docker build -f docker/processor.Dockerfile -t market-data-processor .      (from the repository root)

# 1. the ingester, as docker/ingester.Dockerfile builds it
FROM node:20.20.2-bookworm-slim AS ingester
WORKDIR /app
COPY proto/ proto/
COPY ingest-node/package.json ingest-node/package-lock.json ingest-node/
RUN cd ingest-node && npm ci --omit=dev --no-audit --no-fund --loglevel=error
COPY ingest-node/src/ ingest-node/src/

# 2. the Python package and every extra the services use, as a wheel into a virtualenv (the wheel carries
#    proto/wire.json and exchanges.json: pyproject.toml's force-include)
FROM python:3.11.7-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY proto/ proto/
COPY processor-py/ processor-py/
RUN /opt/venv/bin/pip install './processor-py[streaming,bigquery,instruments]'

# 3. the runtime
FROM python:3.11.7-slim-bookworm
# libstdc++: the node binary and the zeromq addon link it
RUN apt-get update \
 && apt-get install -y --no-install-recommends libstdc++6 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app
COPY --from=ingester /usr/local/bin/node /usr/local/bin/node
COPY --from=ingester /app/ /app/
COPY --from=build /opt/venv /opt/venv
COPY streaming.yaml /app/streaming.yaml
# MDTH_INGEST_NODE: the installed package is not inside the repository, where it would look for ingest-node
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MDTH_INGEST_NODE=/app/ingest-node/src/cli.js \
    NUMBA_CACHE_DIR=/app/data/numba-cache
WORKDIR /app
# streaming.yaml's relative paths (data/journal, data/warehouse, data/spill, data/recordings) are under
# /app/data: docker-compose.yml mounts named volumes there, which take this ownership when first created
RUN mkdir -p data/journal data/warehouse data/spill data/recordings data/numba-cache \
 && chown -R app:app /app/data

USER app
# /metrics and /health: streaming.yaml's metrics.address (127.0.0.1:9464) is inside the container, enough
# for this check; docker-compose.yml passes --metrics-address 0.0.0.0:9464 so that Prometheus can scrape it
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD \
  python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:9464/health', timeout=4)"
ENTRYPOINT ["python", "-m", "market_data_tick_handler.main"]
CMD ["--config", "/app/streaming.yaml"]
