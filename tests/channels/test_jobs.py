"""Jobs left behind by a crash: the sweeper enqueues them again, and gives up on those pending for too long."""

from __future__ import annotations

from airy_actors import jobs
from airy_actors.models import Channel, Job
from airy_actors.timestamps import now_ms
from api import jobs as job_waits
from tests.channels.pages import PAGE_ID, PAGE_TOKEN
from tests.support import wait_until
from workers.channels import connect_page, explore_pages, sweep_jobs


def status(job_id: str) -> str:
    return Job.get_by_id(job_id).status


def test_a_job_whose_message_was_lost_is_run_by_the_sweeper(api, worker, page):
    # Given a connect job stored, its message lost in a crash a while ago
    job_id = jobs.create_job(
        "facebook.connect", connect_page.actor_name, {"page_id": PAGE_ID}, {"page_token": PAGE_TOKEN}
    )
    Job.update(updated_at=now_ms() - jobs.JOB_STALE_MS - 1).where(Job.id == job_id).execute()

    assert sweep_jobs() == 1

    wait_until(lambda: status(job_id) == "succeeded", message="the swept job did not run")
    assert api.post("/jobs.info", json={"job_id": job_id}).json()["result"]["id"] == Channel.get().id


def test_a_lost_explore_is_run_again_by_the_sweeper(api, worker, fake_graph):
    fake_graph.add_page("7001", "Seven", "EAA-token-7001")
    fake_graph.add_user("EAA-user-token", ["7001"])
    job_id = jobs.create_job("facebook.explore", explore_pages.actor_name, {}, {"auth_token": "EAA-user-token"})
    Job.update(updated_at=0).where(Job.id == job_id).execute()

    sweep_jobs()

    wait_until(lambda: status(job_id) == "succeeded", message="the swept explore did not run")
    assert Job.get_by_id(job_id).result == {
        "data": [
            {
                "page_id": "7001",
                "name": "Seven",
                "image_url": "https://scontent.xx.fbcdn.net/v/t39.30808-1/7001_n.jpg",
                "connected": False,
            }
        ]
    }


def test_a_job_being_worked_on_is_left_alone(worker, db):
    job_id = jobs.create_job("facebook.connect", connect_page.actor_name, {"page_id": PAGE_ID}, {"page_token": "x"})

    assert sweep_jobs() == 0
    assert status(job_id) == "pending"


def test_a_job_pending_for_too_long_fails(db):
    job_id = jobs.create_job("facebook.connect", connect_page.actor_name, {"page_id": PAGE_ID}, {"page_token": "x"})
    Job.update(created_at=now_ms() - jobs.JOB_GIVE_UP_MS - 1).where(Job.id == job_id).execute()

    assert jobs.abandon_expired_jobs() == 1

    job = Job.get_by_id(job_id)
    assert (job.status, job.error_status) == ("failed", 503)
    assert jobs.job_info(job_id) == {"job_id": job_id, "status": "failed", "error": job.error}
    assert job.arguments["secrets"] == {}  # the token is erased when the job ends


def test_a_job_ends_once(db):
    job_id = jobs.create_job("facebook.connect", connect_page.actor_name, {}, None)

    assert jobs.succeed(job_id, {"id": "a"}) is True
    assert jobs.fail(job_id, "too late", 400) is False
    assert jobs.succeed(job_id, {"id": "b"}) is False
    assert jobs.job_info(job_id) == {"job_id": job_id, "status": "succeeded", "result": {"id": "a"}}


def test_jobs_that_ended_long_ago_are_deleted(db):
    old = jobs.create_job("facebook.connect", connect_page.actor_name, {}, None)
    recent = jobs.create_job("facebook.connect", connect_page.actor_name, {}, None)
    running = jobs.create_job("facebook.connect", connect_page.actor_name, {}, None)
    jobs.succeed(old, {})
    jobs.fail(recent, "no", 400)
    Job.update(updated_at=now_ms() - jobs.JOB_RETENTION_MS - 1).where(Job.id.in_([old, running])).execute()

    assert jobs.delete_old_jobs() == 1

    assert sorted(job.id for job in Job.select()) == sorted([recent, running])


def test_a_waiter_that_cannot_reach_redis_polls_the_database(db):
    import asyncio
    import dataclasses
    import threading

    from airy_actors.config import get_settings, use_settings
    from airy_actors.db import database

    job_id = jobs.create_job("facebook.connect", connect_page.actor_name, {}, None)

    def finish_later() -> None:
        with database.connection_context():
            jobs.succeed(job_id, {"id": "done"})

    settings = get_settings()
    use_settings(dataclasses.replace(settings, redis_url="redis://127.0.0.1:1/0"))  # nothing listens there
    try:
        timer = threading.Timer(0.2, finish_later)
        timer.start()
        job = asyncio.run(job_waits.wait_for_job(job_id, timeout_ms=10_000))
        timer.join(timeout=5)
    finally:
        use_settings(settings)

    assert (job.status, job.result) == ("succeeded", {"id": "done"})
