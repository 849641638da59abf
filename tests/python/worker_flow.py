"""Drives a running Ferrum (API + runner + Docker) with the official IronWorker Python client,
unchanged, the way an IronWorker user would: upload a directory holding a Python worker that
itself uses the client's helpers, queue tasks, wait for them, read logs and stdout.

Run by crates/ferrum/tests/python_e2e.rs with IRON_PROTOCOL/IRON_HOST/IRON_PORT/
IRON_PROJECT_ID/IRON_TOKEN set and an empty working directory. Exits non-zero on any failure.
"""
import json
import os
import subprocess
import sys
import tempfile
import urllib.request

from iron_worker import IronWorker

WORKER = r'''
import json, os, sys, tempfile
from iron_worker import IronWorker
payload = IronWorker.payload()
print("payload=" + json.dumps(payload, sort_keys=True))
print("task_id=" + str(IronWorker.task_id()))
print("config=" + json.dumps(IronWorker.config(), sort_keys=True))
print("cwd=" + os.getcwd() + " task_dir=" + str(IronWorker.task_dir()))
with open(os.path.expanduser("~/.cache-probe"), "w") as f:
    f.write("x")
with tempfile.NamedTemporaryFile() as f:
    f.write(b"x")
print("home and tmp are writable")
sys.stderr.write("a line on stderr\n")
if payload and payload.get("fail"):
    sys.exit(2)
'''


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def make_worker_dir():
    """A worker directory as users ship it: the script plus its vendored dependencies."""
    root = tempfile.mkdtemp(prefix="ferrum-pyworker-")
    os.chdir(root)
    os.mkdir("w")
    with open("w/hello.py", "w") as f:
        f.write(WORKER)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--target", "w",
         "--no-compile", "iron-worker==1.3.8"],
        check=True)


def set_config(code_name, config):
    """An options-only upload (no zip) that sets the code's config; the Python client has no
    call for it, so this is the raw v2 request other clients send."""
    boundary = "ferrumboundary"
    data = json.dumps({"name": code_name, "config": json.dumps(config)})
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\n"
            f"{data}\r\n--{boundary}--\r\n").encode()
    url = (f"http://{os.environ['IRON_HOST']}:{os.environ['IRON_PORT']}/2/projects/"
           f"{os.environ['IRON_PROJECT_ID']}/codes")
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Authorization": "OAuth " + os.environ["IRON_TOKEN"],
        "Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req) as r:
        check(r.status == 200, "config upload")


def main():
    make_worker_dir()
    worker = IronWorker()

    code = worker.upload("w", name="pyhello", executable="w/hello.py")
    check(code.id, "upload returns the code id")

    # A task with a payload; the worker reads it through the client's own helpers.
    task = worker.queue(code_name="pyhello", payload={"n": 1})
    done = worker.wait_for_task(task)
    check(done.status == "complete", f"status {done.status}: {done.message}")
    log = worker.log(task.id)
    check('payload={"n": 1}' in log, log)
    check("task_id=" + task.id in log, log)
    check("config=null" in log, "no config file without a config: " + log)
    check("cwd=/mnt/task task_dir=/mnt/task" in log, log)
    check("home and tmp are writable" in log, log)
    check("a line on stderr" in log, "log has stderr: " + log)
    out = worker.stdout(task.id)
    check("a line on stderr" not in out and 'payload={"n": 1}' in out, "outlog: " + out)

    # run(): queue, wait, stdout in one call.
    out = worker.run(code_name="pyhello", payload={"n": 2})
    check('payload={"n": 2}' in out, out)

    # A failing worker.
    bad = worker.wait_for_task(worker.queue(code_name="pyhello", payload={"fail": True}))
    check(bad.status == "error", f"failing worker: {bad.status}")

    # Config reaches config().
    set_config("pyhello", {"db": "postgres://x"})
    configured = worker.wait_for_task(worker.queue(code_name="pyhello", payload={}))
    check('config={"db": "postgres://x"}' in worker.log(configured.id), "config()")

    # Listing and filtering.
    ids = [t.id for t in worker.tasks_by_code_name("pyhello")]
    check(task.id in ids and bad.id in ids, "tasks_by_code_name")
    completed = [t.id for t in worker.tasks(complete=1)]
    check(task.id in completed and bad.id not in completed, "complete filter")

    # Retry makes a new task that runs too.
    retried = worker.retry(task.id, delay=0)
    new_id = retried.id if hasattr(retried, "id") else retried["tasks"][0]["id"]
    check(new_id != task.id, "retry is a new task")
    check(worker.wait_for_task(worker.task(new_id)).status == "complete", "retry ran")

    # Progress on a delayed task, then cancel it before it runs.
    later = worker.queue(code_name="pyhello", payload={}, delay=600)
    check(worker.setProgress(later.id, 50, "halfway")["msg"] == "Progress set", "progress")
    worker.cancel(later.id)
    check(worker.task(later.id).status == "cancelled", "cancel")

    # Codes and revisions; delete.
    check("pyhello" in [c.name for c in worker.codes()], "codes")
    check(len(worker.revisions(code.id)) >= 2, "revisions")
    worker.deleteCode(code.id)
    check("pyhello" not in [c.name for c in worker.codes()], "deleted")
    print("worker flow: ok")


if __name__ == "__main__":
    main()
