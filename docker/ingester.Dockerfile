# syntax=docker/dockerfile:1
# The Node ingester alone: tardis-dev -> wire frames -> ZeroMQ, for an ingester run apart from the processor
# (README "Surviving a crash": --endpoint tcp://HOST:PORT, with CURVE keys in the environment when HOST is
# not loopback). The processor image carries its own copy (docker/processor.Dockerfile spawns it).
#   docker build -f docker/ingester.Dockerfile -t market-data-ingester .      (from the repository root)
#   docker run --rm market-data-ingester --source tardis-realtime --exchange binance --symbols btcusdt \
#     --data-types trade --endpoint tcp://processor:5555 --metrics-address 0.0.0.0:9465
FROM node:20.20.2-bookworm-slim

ENV NODE_ENV=production
WORKDIR /app
# proto/: the wire schema and exchanges.json, read from ../../proto relative to src/
COPY proto/ proto/
COPY ingest-node/package.json ingest-node/package-lock.json ingest-node/
# zeromq ships prebuilt addons for linux glibc (x64, arm64): no compiler needed
RUN cd ingest-node && npm ci --omit=dev --no-audit --no-fund --loglevel=error && npm cache clean --force
COPY ingest-node/src/ ingest-node/src/
# the journal and raw recordings, when enabled (--journal-dir, --record-dir), go on volumes mounted here
RUN mkdir -p /app/data/journal /app/data/recordings && chown -R node:node /app/data

# the image's unprivileged user (uid 1000)
USER node
# No HEALTHCHECK here: /health exists only when the ingester is started with --metrics-address. A service
# running this image with --metrics-address 0.0.0.0:9465 checks it with
#   test: ["CMD", "node", "-e", "fetch('http://127.0.0.1:9465/health').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "/app/ingest-node/src/cli.js"]
CMD ["--help"]
