# One image for every MaskWatch service: the API (`maskwatch serve`), the workers
# (`maskwatch worker`) and the one-shot migration (`maskwatch db upgrade`).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# ffmpeg/ffprobe decode and probe the footage; libGL and GLib are what opencv-python (pulled
# by the ByteTrack package, trackers) loads at import.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY . .
RUN pip install -e ".[service]"

# Uploads live on a volume shared by the API and the workers, at the same path in each.
RUN useradd --system --uid 10001 --home-dir /app maskwatch \
    && mkdir -p /data/uploads \
    && chown maskwatch /data/uploads
USER maskwatch
ENV MASKWATCH_UPLOAD_DIR=/data/uploads \
    MASKWATCH_API_HOST=0.0.0.0 \
    MASKWATCH_API_PORT=8000

EXPOSE 8000
CMD ["maskwatch", "serve"]
