# StyleDrop Studio for docker-compose: target "web" (API, migrations, beat; no torch) and target "worker"
# (Celery worker with the engine: torch, diffusers, open_clip; the webhook worker runs from the web image).
# Build: docker compose build.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /srv/styledrop
COPY pyproject.toml README.md alembic.ini ./
COPY styledrop ./styledrop
COPY app ./app
COPY worker ./worker
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
COPY examples ./examples
RUN useradd --create-home --uid 1000 styledrop && mkdir -p /data && chown styledrop /data

FROM base AS web
RUN pip install -e .
USER styledrop
EXPOSE 8000
# uvicorn's own proxy handling off (it would believe X-Forwarded-For from 127.0.0.1): the app believes only the
# proxies STYLEDROP_FORWARDED_ALLOW_IPS names.
CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000", "--no-proxy-headers"]

FROM base AS worker
RUN pip install -e ".[engine]"
USER styledrop
# One process per GPU, one job at a time, run in the worker process itself (solo pool): the model is loaded
# lazily and kept there, and `docker compose stop` (SIGTERM, warm shutdown) reaches the running training, which
# writes a checkpoint and puts its round back in the queue. Gossip and mingle (peer-to-peer chatter the app
# does not use) are off, as in `styledrop serve`: less to re-establish when Redis restarts.
CMD ["celery", "-A", "worker.celery_app", "worker", "--queues", "gpu,default", "--concurrency", "1", "--pool", "solo", \
     "--without-gossip", "--without-mingle", "--loglevel", "INFO"]
