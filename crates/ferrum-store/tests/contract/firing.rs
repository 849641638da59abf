//! Schedule firing (cron, misfires, pause, limits), delayed tasks and webhook deliveries.

use chrono::{DateTime, SubsecRound, Utc};
use ferrum_model::recurrence::MisfirePolicy;
use ferrum_model::validation::{new_schedule, ScheduleOptions};
use ferrum_model::{CodeSpec, Id, NewTask, NewWebhook, Page, ScheduleStatus, TaskFilter};
use ferrum_store::{ScheduleTiming, ScheduleUpdate};

use super::world::{world, Backend, World};

fn opts(
    cron: Option<&str>,
    every: Option<f64>,
    start_at: DateTime<Utc>,
    misfire: &str,
) -> ScheduleOptions {
    ScheduleOptions {
        start_at: Some(start_at),
        run_every: every,
        cron: cron.map(str::to_owned),
        misfire: Some(misfire.to_owned()),
        // These tests fire seconds crons, as an operator allowing them would.
        min_interval_secs: Some(1),
        ..ScheduleOptions::default()
    }
}

async fn schedule(w: &World, o: ScheduleOptions) -> Id {
    let s = new_schedule("c", b"{}".to_vec(), o, Utc::now()).unwrap();
    w.store
        .create_schedules(w.project, vec![s], None)
        .await
        .unwrap()[0]
}

async fn tasks_of(w: &World, schedule: Id) -> usize {
    let filter = TaskFilter {
        schedule_id: Some(schedule),
        page: Page::new(None, Some(100)),
        ..TaskFilter::default()
    };
    w.store.tasks(w.project, &filter).await.unwrap().len()
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

pub async fn after_downtime_run_once_fires_once_and_catch_up_fires_every_slot(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let ten_min_ago = Utc::now() - secs(600);
    let once = schedule(&w, opts(None, Some(60.0), ten_min_ago, "run_once")).await;
    let all = schedule(&w, opts(Some("0 * * * * *"), None, ten_min_ago, "catch_up")).await;
    let skip = schedule(&w, opts(None, Some(60.0), ten_min_ago, "skip")).await;
    let now = Utc::now();
    w.store.fire_due(now, 100).await.unwrap();
    assert_eq!(tasks_of(&w, once).await, 1);
    assert_eq!(tasks_of(&w, all).await, 10, "one task per missed minute");
    assert_eq!(tasks_of(&w, skip).await, 0);
    for id in [once, all, skip] {
        let s = w.store.schedule(w.project, id).await.unwrap().unwrap();
        assert!(s.next_start.unwrap() > now, "realigned to a future slot");
        assert_eq!(s.status, ScheduleStatus::Scheduled);
    }
    assert!(w.store.fire_due(now, 100).await.unwrap().is_empty());
}

pub async fn run_times_end_at_and_pause_stop_firing(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let start = Utc::now().trunc_subsecs(0) - secs(30);
    let mut three = opts(Some("* * * * * *"), None, start, "catch_up");
    three.run_times = Some(3.0);
    let three = schedule(&w, three).await;
    let mut ends = opts(Some("* * * * * *"), None, start, "catch_up");
    ends.end_at = Some(start + secs(4));
    let ends = schedule(&w, ends).await;
    let paused = schedule(&w, opts(Some("* * * * * *"), None, start, "run_once")).await;
    let ps = w.store.set_schedule_paused(w.project, paused, true);
    assert_eq!(ps.await.unwrap(), Some(true));
    let again = w.store.set_schedule_paused(w.project, paused, true);
    assert_eq!(again.await.unwrap(), Some(false));
    let now = Utc::now();
    w.store.fire_due(now, 100).await.unwrap();
    w.store.fire_due(now + secs(5), 100).await.unwrap();
    assert_eq!(tasks_of(&w, three).await, 3);
    assert_eq!(tasks_of(&w, ends).await, 5, "slots start..=start+4s");
    assert_eq!(tasks_of(&w, paused).await, 0);
    for (id, msg) in [(three, "Ran max times."), (ends, "Reached end_at.")] {
        let s = w.store.schedule(w.project, id).await.unwrap().unwrap();
        assert_eq!(s.status, ScheduleStatus::Complete);
        assert_eq!(s.msg.as_deref(), Some(msg));
        assert!(s.next_fire_times(5).is_empty());
    }
    let resumed = w.store.set_schedule_paused(w.project, paused, false);
    assert_eq!(resumed.await.unwrap(), Some(true));
    let s = w.store.schedule(w.project, paused).await.unwrap().unwrap();
    assert!(
        s.next_start.unwrap() > now,
        "resuming skips the paused slots"
    );
    assert_eq!(s.next_fire_times(5).len(), 5);
    let next = w.store.next_fire_at(now).await.unwrap().unwrap();
    assert_eq!(Some(next), s.next_start);
}

/// A new timing replaces how a schedule repeats and its next slot in one write; firing then
/// follows it and `run_count` goes on. An ended schedule keeps its old timing.
pub async fn an_update_of_the_timing_moves_the_next_slot(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let now = Utc::now().trunc_subsecs(0);
    let hourly = schedule(&w, opts(None, Some(3600.0), now - secs(10), "run_once")).await;
    w.store.fire_due(now, 100).await.unwrap();
    assert_eq!(tasks_of(&w, hourly).await, 1);
    let next = now + secs(5);
    let timing = ScheduleTiming {
        run_every: None,
        cron: Some("* * * * * *".into()),
        timezone: Some("Europe/Paris".into()),
        misfire: MisfirePolicy::CatchUp,
        next_start: next,
    };
    let update = ScheduleUpdate {
        timing: Some(timing.clone()),
        ..ScheduleUpdate::default()
    };
    let updated = w.store.update_schedule(w.project, hourly, update.clone());
    assert!(updated.await.unwrap());
    let s = w.store.schedule(w.project, hourly).await.unwrap().unwrap();
    assert_eq!(
        (s.run_every, s.cron.as_deref(), s.timezone.as_deref()),
        (None, Some("* * * * * *"), Some("Europe/Paris"))
    );
    assert_eq!(
        (s.misfire, s.next_start),
        (MisfirePolicy::CatchUp, Some(next))
    );
    assert!(w
        .store
        .fire_due(next - secs(1), 100)
        .await
        .unwrap()
        .is_empty());
    w.store.fire_due(next + secs(2), 100).await.unwrap();
    assert_eq!(
        tasks_of(&w, hourly).await,
        4,
        "the first run, then every second"
    );
    let s = w.store.schedule(w.project, hourly).await.unwrap().unwrap();
    assert_eq!((s.run_count, s.next_start), (4, Some(next + secs(3))));

    assert!(w.store.cancel_schedule(w.project, hourly).await.unwrap());
    let cancelled = w.store.schedule(w.project, hourly).await.unwrap().unwrap();
    let later = ScheduleUpdate {
        timing: Some(ScheduleTiming {
            next_start: now + secs(60),
            cron: None,
            timezone: None,
            run_every: Some(60),
            ..timing
        }),
        ..ScheduleUpdate::default()
    };
    assert!(w
        .store
        .update_schedule(w.project, hourly, later)
        .await
        .unwrap());
    let s = w.store.schedule(w.project, hourly).await.unwrap().unwrap();
    assert_eq!(
        (s.status, s.cron, s.next_start),
        (cancelled.status, cancelled.cron, cancelled.next_start)
    );
}

pub async fn delayed_tasks_are_found_for_waking_runners(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let t = NewTask {
        code_name: "c".into(),
        delay: 30,
        timeout: 60,
        cluster: "elsewhere".into(),
        ..NewTask::default()
    };
    w.store.enqueue(w.project, vec![t]).await.unwrap();
    let now = Utc::now();
    let at = w.store.next_delayed_at(now).await.unwrap().unwrap();
    assert!(at > now + secs(29) && at <= now + secs(31));
    assert_eq!(w.store.next_delayed_at(at).await.unwrap(), None);
}

pub async fn webhooks_and_deduplicated_deliveries(backend: Backend) {
    let w = world(backend).await;
    let code = w.code("c", CodeSpec::default()).await;
    let task = NewTask {
        timeout: 60,
        cluster: "default".into(),
        ..NewTask::default()
    };
    let hook = NewWebhook::new(code, Some("slack"), Some("s3cret".into()), 5, task).unwrap();
    let created = w.store.create_webhook(w.project, "tok", hook.clone());
    let created = created.await.unwrap().unwrap();
    assert_eq!(created.code_name, "c");
    let found = w.store.webhook_by_token("tok").await.unwrap().unwrap();
    assert_eq!(found, created);
    assert!(w.store.webhook_by_token("other").await.unwrap().is_none());
    let other_code = NewWebhook {
        code_id: Id::generate(),
        ..hook
    };
    let none = w.store.create_webhook(w.project, "t2", other_code);
    assert!(none.await.unwrap().is_none(), "unknown code");

    // Eight concurrent deliveries of one key: one task.
    let store = w.store.clone();
    let mut deliveries = Vec::new();
    for _ in 0..8 {
        let (store, task) = (store.clone(), created.task_for(b"body".to_vec()));
        let project = w.project;
        deliveries.push(tokio::spawn(async move {
            store
                .enqueue_once(project, "hook", "k1", task)
                .await
                .unwrap()
        }));
    }
    let mut ids = Vec::new();
    for d in deliveries {
        ids.push(d.await.unwrap());
    }
    assert_eq!(ids.iter().filter(|d| !d.duplicate).count(), 1);
    assert!(ids.iter().all(|d| d.task_id == ids[0].task_id));
    let all = w
        .store
        .tasks(w.project, &TaskFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].payload, b"body");
    assert_eq!(
        w.store
            .purge_deliveries(Utc::now() + secs(1))
            .await
            .unwrap(),
        1
    );

    assert_eq!(w.store.webhooks(w.project, code).await.unwrap().len(), 1);
    let gone = w.store.delete_webhook(w.project, code, created.id);
    assert!(gone.await.unwrap());
    assert!(w.store.webhook_by_token("tok").await.unwrap().is_none());
}

/// Another project, with its own code `c` and a schedule due every minute from `start`.
async fn victim(w: &World, start: DateTime<Utc>) -> (Id, Id) {
    let project = w.other_project("victim").await;
    let rev = ferrum_model::NewRevision {
        name: "c".into(),
        spec: CodeSpec::default(),
        zip: None,
    };
    w.store.put_revision(project, rev).await.unwrap();
    let s = new_schedule(
        "c",
        b"{}".to_vec(),
        opts(None, Some(60.0), start, "run_once"),
        Utc::now(),
    );
    let ids = w
        .store
        .create_schedules(project, vec![s.unwrap()], None)
        .await;
    (project, ids.unwrap()[0])
}

async fn fired_by(w: &World, project: Id, schedule: Id) -> usize {
    let filter = TaskFilter {
        schedule_id: Some(schedule),
        page: Page::new(None, Some(100)),
        ..TaskFilter::default()
    };
    w.store.tasks(project, &filter).await.unwrap().len()
}

/// Issue 15, finding 2, as the attack: schedules whose rows cannot fire (written past
/// validation, as rows stored before a rule existed would be) never stop another project's
/// schedule; each is skipped with its reason, retried later, and stopped with status `error`
/// and a `msg` after `MAX_FIRE_FAILURES` failures in a row.
pub async fn a_schedule_that_cannot_fire_stops_no_other(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let start = Utc::now() - secs(30);
    let poisoned = schedule(&w, opts(None, Some(60.0), start, "run_once")).await;
    let unreadable = schedule(&w, opts(None, Some(60.0), start, "run_once")).await;
    let (other, healthy) = victim(&w, start).await;
    let ghost = format!("UPDATE schedules SET code_name = 'ghost' WHERE id = '{poisoned}'");
    assert_eq!(w.execute(&ghost).await, 1);
    let bad_id = format!("UPDATE schedules SET id = 'not-an-id' WHERE id = '{unreadable}'");
    assert_eq!(w.execute(&bad_id).await, 1);

    let max = ferrum_store::MAX_FIRE_FAILURES;
    let mut now = Utc::now();
    for attempt in 1..=max {
        w.store
            .fire_due(now, 100)
            .await
            .expect("a pass never fails for one row");
        assert_eq!(fired_by(&w, other, healthy).await, attempt as usize);
        let s = w
            .store
            .schedule(w.project, poisoned)
            .await
            .unwrap()
            .unwrap();
        let msg = s.msg.clone().unwrap_or_default();
        assert!(msg.contains("ghost"), "the reason is shown: {msg}");
        if attempt < max {
            assert_eq!(s.status, ScheduleStatus::Scheduled);
            assert!(
                msg.contains(&format!("Firing failed ({attempt} of {max})")),
                "{msg}"
            );
            let retry = s.next_start.unwrap();
            assert!(retry > now, "a failing schedule waits before its next try");
            now = retry + secs(1);
        } else {
            assert_eq!(s.status, ScheduleStatus::Error);
            assert!(
                msg.starts_with(&format!("Stopped after {max} failed")),
                "{msg}"
            );
            assert_eq!(s.next_start, None);
        }
    }
    assert_eq!(tasks_of(&w, poisoned).await, 0);
    let stopped = "UPDATE schedules SET fire_failures = fire_failures \
                   WHERE id = 'not-an-id' AND status = 'error'";
    assert_eq!(
        w.execute(stopped).await,
        1,
        "the unreadable row is stopped too"
    );
    // Stopped schedules are out of the way: the next pass fires only the healthy one.
    w.store.fire_due(now + secs(120), 100).await.unwrap();
    assert_eq!(fired_by(&w, other, healthy).await, max as usize + 1);
}

/// A cluster name stored before names were bounded (10,000 characters) still fires: nothing a
/// row holds reaches a `NOTIFY` unbounded (Postgres refuses payloads over 8000 bytes).
pub async fn a_schedule_with_a_huge_stored_cluster_still_fires(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let start = Utc::now() - secs(30);
    let huge = schedule(&w, opts(None, Some(60.0), start, "run_once")).await;
    let (other, healthy) = victim(&w, start).await;
    let cluster = "x".repeat(10_000);
    let sql = format!("UPDATE schedules SET cluster = '{cluster}' WHERE id = '{huge}'");
    assert_eq!(w.execute(&sql).await, 1);
    w.store.fire_due(Utc::now(), 100).await.unwrap();
    assert_eq!(tasks_of(&w, huge).await, 1);
    assert_eq!(fired_by(&w, other, healthy).await, 1);
    let s = w.store.schedule(w.project, huge).await.unwrap().unwrap();
    assert_eq!((s.status, s.msg), (ScheduleStatus::Scheduled, None));
}

/// The reaper too: a task whose stored cluster is 10,000 characters is requeued like any
/// other, and the pass still reports (its `NOTIFY` carries a bounded name).
pub async fn a_task_with_a_huge_stored_cluster_is_reaped(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let id = w.queue("c", 0, 0).await;
    let other = w.queue("c", 0, 0).await;
    let spec = super::world::spec(2, std::time::Duration::ZERO);
    assert_eq!(w.store.lease(&spec).await.unwrap().len(), 2);
    let cluster = "x".repeat(10_000);
    let sql = format!("UPDATE tasks SET cluster = '{cluster}' WHERE id = '{id}'");
    assert_eq!(w.execute(&sql).await, 1);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let report = w
        .store
        .reap_expired(3)
        .await
        .expect("the reap is not stopped by one row");
    assert_eq!(report.requeued, 2);
    let t = w.store.task(w.project, other).await.unwrap().unwrap();
    assert_eq!(t.status, ferrum_model::TaskStatus::Queued);
}

pub async fn an_update_removes_the_label_and_limits_only_when_told(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let end = (Utc::now() + secs(86_400)).trunc_subsecs(3);
    let mut o = opts(None, Some(60.0), Utc::now(), "run_once");
    o.end_at = Some(end);
    o.run_times = Some(5.0);
    o.task.label = Some("nightly".into());
    let id = schedule(&w, o).await;
    let keep = ScheduleUpdate {
        priority: Some(2),
        ..ScheduleUpdate::default()
    };
    assert!(w.store.update_schedule(w.project, id, keep).await.unwrap());
    let s = w.store.schedule(w.project, id).await.unwrap().unwrap();
    assert_eq!(
        (s.label.as_deref(), s.run_times, s.end_at, s.priority),
        (Some("nightly"), Some(5), Some(end), 2)
    );
    let remove = ScheduleUpdate {
        label: Some(None),
        run_times: Some(None),
        end_at: Some(None),
        ..ScheduleUpdate::default()
    };
    assert!(w
        .store
        .update_schedule(w.project, id, remove)
        .await
        .unwrap());
    let s = w.store.schedule(w.project, id).await.unwrap().unwrap();
    assert_eq!((s.label, s.run_times, s.end_at), (None, None, None));
    assert_eq!(s.status, ScheduleStatus::Scheduled);
}
