# The churnstream image: worker, API and generator share it. Built from the same uv.lock as the local venv.
# The dashboard's charting library comes from npm (its package-lock.json) in a build stage: nothing from a CDN.
FROM node:20-bookworm-slim AS dashboard-assets
WORKDIR /assets
COPY serving/dashboard/assets/package.json serving/dashboard/assets/package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.11-slim-bookworm
ENV UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy PATH="/app/.venv/bin:$PATH"
RUN pip install --no-cache-dir uv==0.13.8
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY core ./core
COPY churnstream ./churnstream
COPY simulation ./simulation
COPY streams ./streams
COPY features ./features
COPY models ./models
COPY serving ./serving
COPY --from=dashboard-assets /assets/node_modules ./serving/dashboard/assets/node_modules
COPY infra ./infra
COPY bench ./bench
RUN uv sync --frozen --no-dev
USER nobody
ENTRYPOINT ["churnstream"]
CMD ["worker"]
