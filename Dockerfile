# One image for every modelmeta process; compose.yaml (or any platform) picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY services ./services
COPY shared ./shared
COPY migrations ./migrations
RUN pip install . && useradd --system --uid 10001 --no-create-home modelmeta

USER modelmeta
EXPOSE 8080 9191
CMD ["modelmeta", "web"]
