"""Drives a Ferrum API with the official IronWorker Python client (iron-worker 1.3.8).

Run by tests/tenant/python_client.rs with IRON_PROTOCOL, IRON_HOST, IRON_PORT,
IRON_PROJECT_ID and IRON_TOKEN set, from an empty working directory (an iron.json there would
override the environment). Exits non-zero on the first failed expectation. Tasks are not run:
no runner is attached, so every task stays queued.
"""

import datetime
import os

from requests.exceptions import HTTPError
from iron_worker import IronWorker, Task

UTC = datetime.timezone.utc


def expect_status(status, call, *args):
    try:
        call(*args)
    except HTTPError as e:
        assert e.response.status_code == status, e.response.status_code
        return
    raise AssertionError("expected HTTP %d from %s" % (status, call.__name__))


def main():
    worker = IronWorker()

    os.makedirs("testDir")
    with open("testDir/hello.py", "w") as f:
        f.write("from iron_worker import IronWorker\nprint(IronWorker.payload())\n")

    # Codes: the upload's file part is a Python bytes repr that the server must decode.
    code = worker.upload("testDir", name="hello")
    assert code.id and code.revision == 1, vars(code)
    codes = worker.codes()
    assert [c.name for c in codes] == ["hello"], codes
    got = worker.code(code.id)
    assert got.name == "hello" and got.revision == 1 and got.latest_checksum, vars(got)
    assert got.latest_change.year >= 2024, got.latest_change
    assert got.runtime == "python", got.runtime
    again = worker.upload("testDir", name="hello")
    assert again.id == code.id and again.revision == 2, vars(again)
    assert [r.revision for r in worker.revisions(code.id)] == [2, 1]

    # Tasks.
    task = worker.queue(code_name="hello", payload={"a": 1})
    assert task.id and not task.scheduled
    many = worker.queue(tasks=[Task(code_name="hello", payload={"i": i}) for i in range(3)])
    assert len(many) == 3 and len({t.id for t in many}) == 3
    special = worker.queue(code_name="hello", payload="rawstring", priority=2, timeout=60,
                           delay=5, label="L", cluster="default")
    listed = worker.tasks()
    assert [t.id for t in listed][:1] == [special.id], "newest first"
    assert task.id in [t.id for t in listed]
    assert not any(t.scheduled for t in listed)
    assert len(worker.tasks(queued=True, killed=True, code_name="hello")) == 5
    assert worker.tasks(complete=True) == []
    assert len(worker.tasks_by_code_name("hello")) == 5

    fetched = worker.task(task.id)
    assert fetched.status == "queued" and fetched.payload == {"a": 1}, vars(fetched)
    assert fetched.timeout == 3600 and fetched.code_rev == "2" and not fetched.scheduled
    fetched = worker.task(special)
    assert (fetched.priority, fetched.timeout, fetched.delay, fetched.label) == (2, 60, 5, "L")
    assert fetched.payload == "rawstring"

    assert worker.setProgress(task.id, 50, "half")["msg"] == "Progress set"
    fetched = worker.task(task.id)
    assert (fetched.percent, fetched.message) == (50, "half"), vars(fetched)
    retried = worker.retry(task.id)
    assert retried["msg"] == "Queued up" and retried["tasks"][0]["id"] != task.id
    expect_status(404, worker.log, task.id)
    expect_status(404, worker.stdout, task.id)
    assert worker.cancel(task) is True
    assert worker.task(task.id).status == "cancelled"

    # Schedules.
    start = datetime.datetime(2030, 1, 1, 12, tzinfo=UTC)
    schedule = worker.queue(code_name="hello", payload={"b": 2}, start_at=start, run_every=60,
                            run_times=3, end_at=datetime.datetime(2030, 1, 2, tzinfo=UTC))
    assert schedule.scheduled and schedule.id
    repeating = worker.queue(task=Task(code_name="hello", scheduled=True, run_every=120))
    schedules = worker.tasks(scheduled=True)
    assert {schedule.id, repeating.id} <= {s.id for s in schedules}
    assert all(s.scheduled for s in schedules)
    got = worker.task(schedule.id, scheduled=True)
    assert got.scheduled and got.run_every == 60 and got.start_at == start, vars(got)
    assert worker.cancel(got) is True
    for s in worker.tasks(scheduled=True):
        if s.id == schedule.id:
            assert s.status == "cancelled", s.status

    # Deleting the code.
    assert worker.deleteCode(code.id) is True
    assert worker.codes() == []
    print("python client flow: OK")


if __name__ == "__main__":
    main()
