# A first image: the service on the embedded SQLite default, data under /data.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY reconciler ./reconciler
COPY handlers ./handlers
COPY scheduler ./scheduler
COPY stripe_sandbox ./stripe_sandbox
RUN pip install --no-cache-dir . && useradd --system --home /data reconciler \
    && mkdir -p /data && chown reconciler /data
USER reconciler
ENV DATABASE_URL=sqlite+aiosqlite:////data/reconciler.db HOST=0.0.0.0 PORT=8000
VOLUME /data
EXPOSE 8000
CMD ["sh", "-c", "reconciler migrate && exec reconciler serve"]
