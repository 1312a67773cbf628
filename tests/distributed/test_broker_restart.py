"""Redis restarted without persistence loses queued messages; the workers send them again."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from maskwatch.settings import Settings
from storage.db import make_engine, make_session_factory
from storage.models import JobStatus, SegmentStatus
from tests.distributed.dist_support import (
    SAMPLE_FPS,
    RedisServer,
    WorkerFleet,
    frame_rows,
    segment_rows,
    submit_job,
    wait_finished,
    wait_for_stored_batch,
)
from worker.celery_app import create_app
from worker.dispatch import queued_messages

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

# Each test runs its own redis-server (the shared one's flags: no RDB, no AOF) on a free
# port, so restarting it disturbs nothing else.


@dataclass(frozen=True)
class PrivateCluster:
    """A Redis and a database of this test's own, a session factory and a Celery client on
    them, and ``fleet(**env)`` to start workers there."""

    redis: RedisServer
    database: str
    session_factory: sessionmaker[Session]
    client: Celery
    fleet_factory: Callable[..., WorkerFleet]

    def fleet(self, **extra_env: str) -> WorkerFleet:
        return self.fleet_factory(self.redis.url, self.database, **extra_env)

    def submit(self, video: Path) -> str:
        return submit_job(self.session_factory, self.client, video, sample_fps=SAMPLE_FPS)


@pytest.fixture
def private(
    private_redis: RedisServer,
    private_database: str,
    fleet_factory: Callable[..., WorkerFleet],
) -> Iterator[PrivateCluster]:
    engine = make_engine(private_database)
    celery = create_app(Settings(broker_url=private_redis.url, database_url=private_database))
    yield PrivateCluster(
        private_redis, private_database, make_session_factory(engine), celery, fleet_factory
    )
    celery.close()
    engine.dispose()


def test_job_queued_across_a_redis_restart_completes_when_a_worker_starts(
    private: PrivateCluster, videos: dict[str, Path]
) -> None:
    job_id = private.submit(videos["16s"])
    broker = redis.Redis.from_url(private.redis.url)
    assert queued_messages(broker) == 1

    private.redis.restart()  # redis-cli shutdown nosave, then the same redis-server again
    assert queued_messages(broker) == 0, "the queued message should be gone"

    worker = private.fleet().start("late")
    job = wait_finished(private.session_factory, job_id, timeout_s=90)
    assert (job.status, job.error) == (JobStatus.SUCCEEDED, None)
    assert len(frame_rows(private.session_factory, job_id)) == job.frames_total == 32
    assert "the broker lost its messages" in worker.log()
    broker.close()


def test_segments_lost_in_a_redis_restart_are_sent_again_to_running_workers(
    private: PrivateCluster, videos: dict[str, Path]
) -> None:
    worker = private.fleet(MASKWATCH_RECOVERY_INTERVAL_S="2").start("steady")
    job_id = private.submit(videos["20s"])
    wait_for_stored_batch(private.session_factory, job_id, running=False, interval_s=0.1)
    broker = redis.Redis.from_url(private.redis.url)
    waiting = queued_messages(broker)
    assert waiting >= 2, "segments should be waiting in the broker"
    private.redis.restart()  # shutdown nosave, no persistence: the queued segments are gone
    # (no "none queued" check here: the worker's recovery may already have re-sent them; the log
    # line asserted below is the proof that the loss was seen and repaired)

    job = wait_finished(private.session_factory, job_id, timeout_s=90)
    assert (job.status, job.error) == (JobStatus.SUCCEEDED, None)
    rows = frame_rows(private.session_factory, job_id)
    assert len(rows) == len({row[0] for row in rows}) == job.frames_total == job.frames_done == 40
    segments = segment_rows(private.session_factory, job_id)
    assert {s.status for s in segments} == {SegmentStatus.SUCCEEDED}
    assert "the broker lost its messages" in worker.log()
    broker.close()
