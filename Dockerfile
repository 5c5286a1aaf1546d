# The API and worker image: hash-pinned dependencies, a non-root user, no embedded database
# in use. /var/lib/habeas/checkpoints is where the worker exports checkpoints (a volume).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /srv/habeas

COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock

COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
COPY policies ./policies
RUN pip install --no-cache-dir --no-deps . \
    && useradd --system --home-dir /srv/habeas habeas \
    && install -d -o habeas -m 0755 /var/lib/habeas/checkpoints
USER habeas

EXPOSE 8000
CMD ["sh", "-c", "habeas migrate && exec habeas serve --host 0.0.0.0 --port 8000 --workers 2 --no-migrate"]
