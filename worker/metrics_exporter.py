"""The HTTP exporter of a worker's metrics: its pool processes' files, jobs and queue depth.

Run by ``maskwatch worker`` as a child process (``python -m worker.metrics_exporter``),
not as a thread of the worker: the worker's main process forks pool processes, and a fork
must not happen while another thread holds a lock. The exporter exits when the worker does.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, multiprocess, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from worker.metrics_files import MULTIPROC_ENV

logger = logging.getLogger(__name__)

PARENT_POLL_S = 2.0


class BacklogCollector(Collector):
    """Jobs by status (from the database) and queue depth (from the broker), read per scrape.

    Each worker's exporter reports the same deployment-wide figures; aggregate them with
    ``max``, not ``sum``. A store that cannot be reached leaves its figures out of that
    scrape, and ``maskwatch_backlog_up`` says so.
    """

    def __init__(self, database_url: str, broker_url: str, queues: Sequence[str]) -> None:
        from storage.db import make_engine, make_session_factory

        self.engine = make_engine(database_url)
        self.session_factory = make_session_factory(self.engine)
        self.broker_url = broker_url
        self.queues = list(queues)

    def collect(self) -> Iterator[Metric]:
        import redis

        from storage.repositories import job_stats

        up = GaugeMetricFamily(
            "maskwatch_backlog_up",
            "Whether the database (source=database) or broker (source=broker) answered.",
            labels=["source"],
        )
        try:
            with self.session_factory() as session:
                counts = job_stats.count_by_status(session)
            jobs = GaugeMetricFamily(
                "maskwatch_jobs", "Jobs in the database, by status.", labels=["status"]
            )
            for status, count in counts.items():
                jobs.add_metric([status.value], count)
            yield jobs
            up.add_metric(["database"], 1)
        except Exception:
            logger.warning("metrics: the database did not answer", exc_info=True)
            up.add_metric(["database"], 0)
        client = redis.Redis.from_url(self.broker_url, socket_timeout=3)
        try:
            depth = GaugeMetricFamily(
                "maskwatch_queue_depth",
                "Task messages waiting in the broker's queue (not yet taken by a worker).",
                labels=["queue"],
            )
            for queue in self.queues:
                depth.add_metric([queue], int(client.llen(queue)))
            yield depth
            up.add_metric(["broker"], 1)
        except Exception:
            logger.warning("metrics: the broker did not answer", exc_info=True)
            up.add_metric(["broker"], 0)
        finally:
            client.close()
        yield up


def build_registry(database_url: str, broker_url: str, queues: Sequence[str]) -> CollectorRegistry:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=os.environ[MULTIPROC_ENV])
    registry.register(BacklogCollector(database_url, broker_url, queues))
    return registry


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="0.0.0.0")  # scraped from other machines
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--queues", default="analysis")
    parser.add_argument("--parent", type=int, required=True, help="exit when this pid is gone")
    args = parser.parse_args(argv)
    if not os.environ.get(MULTIPROC_ENV):
        raise SystemExit(f"{MULTIPROC_ENV} is not set")
    from maskwatch.settings import get_settings

    settings = get_settings()
    registry = build_registry(
        settings.database_url, settings.broker_url, [q for q in args.queues.split(",") if q]
    )
    try:
        server, _thread = start_http_server(args.port, addr=args.host, registry=registry)
    except OSError as exc:
        # The worker runs on without metrics; say how to fix it, once, without a traceback.
        raise SystemExit(
            f"worker metrics: cannot listen on {args.host}:{args.port} ({exc.strerror}); give "
            "each worker on this machine its own --metrics-port (0: no exporter)"
        ) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logger.info("worker metrics on http://%s:%d/metrics", args.host, args.port)
    try:
        while os.getppid() == args.parent:
            time.sleep(PARENT_POLL_S)
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
