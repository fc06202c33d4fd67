# syntax=docker/dockerfile:1
# A local BigQuery (bqemulator: REST on 9050, gRPC on 9060) for persist mode without a cloud account, as
# `make bq-emulator` runs it: in its own virtualenv (its pins clash with the processor's:
# processor-py/requirements-bqemu.txt), DuckDB's spatial extension put in place at build time under the
# emulator's HOME so that it downloads nothing at start. docker-compose.yml's `emulator` profile.
FROM python:3.11.7-slim-bookworm

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN groupadd --system --gid 10002 bqemu \
 && useradd --system --uid 10002 --gid bqemu --home-dir /home/bqemu --create-home --shell /usr/sbin/nologin bqemu \
 && python -m venv /opt/bqemu
COPY processor-py/requirements-bqemu.txt /tmp/requirements-bqemu.txt
RUN /opt/bqemu/bin/pip install -r /tmp/requirements-bqemu.txt \
 && mkdir -p /data && chown bqemu:bqemu /data
USER bqemu
ENV HOME=/home/bqemu PATH=/opt/bqemu/bin:$PATH BQEMU_ENABLE_FORMAT_EXTENSIONS=false
RUN python -c "from duckdb_extensions import import_extension; import_extension('spatial')"
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD \
  python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:9050/healthz', timeout=4)"
ENTRYPOINT ["bqemulator"]
CMD ["start", "--rest-host", "0.0.0.0", "--grpc-host", "0.0.0.0", "--project", "local-project", \
     "--persistent", "--data-dir", "/data", "--log-level", "warning"]
