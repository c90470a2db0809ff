# Callbot in a container: one process (`callbot serve`) on port 3000, its SQLite database on
# the /data volume. Settings come from the environment when it runs (compose.yaml reads
# .env); nothing secret is built into the image. README: "Docker and Compose".
#
#   docker build -t callbot .
#   docker run --rm callbot callbot demo          # the offline demo, no accounts needed

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/callbot
WORKDIR /src
# Only what the package is built from (pyproject.toml reads README.md).
COPY pyproject.toml README.md LICENSE ./
COPY bot ./bot
COPY handlers ./handlers
COPY storage ./storage
COPY standins ./standins
RUN /opt/callbot/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/callbot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DATABASE_URL=sqlite:////data/callbot.db \
    HOST=0.0.0.0 \
    PORT=3000
# A user of its own, with a fixed uid so volume ownership and runAsNonRoot checks work.
RUN groupadd --system --gid 10001 callbot \
    && useradd --system --uid 10001 --gid callbot --no-create-home --home-dir /data \
       --shell /usr/sbin/nologin callbot \
    && mkdir -p /data \
    && chown callbot:callbot /data \
    && chmod 0700 /data
COPY --from=build /opt/callbot /opt/callbot
# No .env here: the working directory is empty and read-only to the app.
WORKDIR /app
USER 10001:10001
VOLUME ["/data"]
EXPOSE 3000
# slim has no curl: ask /healthz with Python's urllib (a 503 raises, so the check fails).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '3000') + '/healthz', timeout=4)"]
# SIGTERM stops it cleanly within CALLBOT_SHUTDOWN_TIMEOUT (10 s by default).
STOPSIGNAL SIGTERM
CMD ["callbot", "serve"]
