# syntax=docker/dockerfile:1
#
# news-monitor: the feed-polling daemon in a container.
#
#   docker build -t news-monitor .
#   docker run -d --name monitor -v monitor-data:/data news-monitor
#   docker run --rm -v monitor-data:/data news-monitor monitor feeds
#
# Your own configuration: mount it over the shipped one,
#   -v "$PWD/feeds.toml:/config/feeds.toml:ro"
# PostgreSQL instead of the SQLite file in the volume:
#   -e MONITOR_DATABASE_URL=postgresql://user:password@host:5432/monitor
#
# `monitor run` stops on SIGTERM within Docker's default 10 s grace: it
# finishes the article in hand, or abandons a fetch still hanging after 8 s
# (that article is fetched again at the next start).

# --- Stage 1: wheels ---------------------------------------------------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# The context is filtered by .dockerignore (no .git, tests, databases, caches).
COPY . .

# The project's own wheel (setuptools, from pyproject.toml; it carries the
# Alembic migrations as package data), then wheels of all its dependencies,
# resolved from the wheel's metadata so the list lives only in pyproject.toml.
# Every dependency has a binary wheel or is pure Python: no compiler needed.
RUN pip wheel --no-deps -w /wheels . \
 && pip wheel -w /wheels /wheels/news_monitor-*.whl

# --- Stage 2: runtime --------------------------------------------------------
FROM python:3.11-slim

# PYTHONUNBUFFERED: alerts of the console channel go to stdout; do not hold
# them in a buffer.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

# Install from the wheels only (no index), without copying them into a layer.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels news-monitor

# An unprivileged user with a fixed uid/gid, so a host directory mounted on
# /data can be given to it: `chown 10001:10001 <dir>`.
RUN groupadd --system --gid 10001 monitor \
 && useradd --system --uid 10001 --gid monitor --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin monitor \
 && mkdir -p /data /config \
 && chown monitor:monitor /data

COPY feeds.toml /config/feeds.toml

# MONITOR_DATABASE_URL takes precedence over [storage] url in the configuration,
# MONITOR_HEARTBEAT over [metrics] heartbeat: the file the daemon touches at
# every tick and `monitor healthcheck` reads.
ENV MONITOR_CONFIG=/config/feeds.toml \
    MONITOR_DATABASE_URL=sqlite:////data/monitor.db \
    MONITOR_HEARTBEAT=/data/heartbeat

WORKDIR /data
# The SQLite database (monitor.db and its -wal/-shm files) lives here.
VOLUME /data

USER monitor

# Healthy when the database answers and the daemon ticked in the last 15
# minutes ([metrics] heartbeat_max_age); exit 1 with a one-line reason
# otherwise. The CLI itself checks: no curl in the image.
HEALTHCHECK --interval=1m --timeout=20s --start-period=2m --retries=3 CMD ["monitor", "healthcheck"]

# Exec form: `monitor` is PID 1 and receives SIGTERM from `docker stop` itself.
CMD ["monitor", "run"]
