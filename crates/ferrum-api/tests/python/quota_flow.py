"""The official Python client (iron-worker 1.3.8) against a project whose quotas an admin set
(tasks_per_minute 2, max_queued 3; see tests/tenant/quotas.rs). A refused queue call is a 429
that the client raises (it retries only 503 and 504), so no task is ever written twice.
"""

import os

from requests.exceptions import HTTPError
from iron_worker import IronWorker, Task


def refused(call, **kwargs):
    try:
        call(**kwargs)
    except HTTPError as e:
        r = e.response
        assert r.status_code == 429, r.status_code
        assert int(r.headers["Retry-After"]) >= 1, r.headers
        assert "tasks_per_minute" in r.json()["msg"], r.text
        return
    raise AssertionError("expected HTTP 429")


def main():
    worker = IronWorker()
    os.makedirs("testDir")
    with open("testDir/hello.py", "w") as f:
        f.write("print('hello')\n")
    worker.upload("testDir", name="hello")

    first = worker.queue(code_name="hello", payload={"i": 1})
    second = worker.queue(code_name="hello", payload={"i": 2})
    refused(worker.queue, code_name="hello", payload={"i": 3})
    refused(worker.queue, tasks=[Task(code_name="hello", payload={"i": 4})])
    ids = sorted(t.id for t in worker.tasks(queued=True))
    assert ids == sorted([first.id, second.id]), ids
    print("python quota flow: OK")


if __name__ == "__main__":
    main()
