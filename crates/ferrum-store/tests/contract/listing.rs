//! The task list: every filter answers exactly the project's matching tasks, newest first,
//! and walking it by cursor or by page gives the same tasks as one long page.

use std::time::Duration;

use ferrum_model::{CodeSpec, Page, Task, TaskFilter, TaskStatus};
use ferrum_store::Store;

use super::world::{outcome, runner, spec, task, world, Backend};

/// Which tasks a filter case should answer.
type Matcher = Box<dyn Fn(&Task) -> bool>;

/// Every page of `f`, followed by cursor (`before` = the last id of the previous page).
async fn walk_by_cursor(s: &dyn Store, project: ferrum_model::Id, f: &TaskFilter) -> Vec<Task> {
    let mut all = Vec::new();
    let mut f = TaskFilter {
        page: Page::new(None, Some(4)),
        ..f.clone()
    };
    loop {
        let page = s.tasks(project, &f).await.unwrap();
        let full = page.len() == 4;
        f.before = page.last().map(|t| t.id);
        all.extend(page);
        if !full {
            return all;
        }
    }
}

/// Every page of `f`, by IronWorker's `page` number.
async fn walk_by_page(s: &dyn Store, project: ferrum_model::Id, f: &TaskFilter) -> Vec<Task> {
    let mut all = Vec::new();
    for n in 0.. {
        let g = TaskFilter {
            page: Page::new(Some(n), Some(3)),
            ..f.clone()
        };
        let page = s.tasks(project, &g).await.unwrap();
        let done = page.len() < 3;
        all.extend(page);
        if done {
            break;
        }
    }
    all
}

fn ids(tasks: &[Task]) -> Vec<String> {
    tasks.iter().map(|t| t.id.to_string()).collect()
}

pub async fn every_list_filter_answers_its_tasks_newest_first_by_cursor_or_page(backend: Backend) {
    let w = world(backend).await;
    let s = &*w.store;
    w.code("a", CodeSpec::default()).await;
    w.code("b", CodeSpec::default()).await;
    let batch = (0..30)
        .map(|i| {
            let mut t = task(if i % 2 == 0 { "a" } else { "b" }, 0, 0);
            t.label = (i % 3 == 0).then(|| "nightly".to_owned());
            if i % 5 == 0 {
                t.cluster = "gpu".into();
            }
            t
        })
        .collect();
    s.enqueue(w.project, batch).await.unwrap();

    // Another tenant with the same code name, label and cluster: never listed.
    let other_owner = s.create_user("o@example.com", false).await.unwrap();
    let other = s.create_project(other_owner, "o").await.unwrap().id;
    let rev = ferrum_model::NewRevision {
        name: "a".into(),
        spec: CodeSpec::default(),
        zip: None,
    };
    s.put_revision(other, rev).await.unwrap();
    let mut theirs = task("a", 0, 0);
    theirs.label = Some("nightly".into());
    s.enqueue(other, vec![theirs; 5]).await.unwrap();

    // Spread the statuses: preparing, running, complete, error, queued.
    let leased = s.lease(&spec(8, Duration::from_secs(60))).await.unwrap();
    assert_eq!(leased.len(), 8);
    for (i, l) in leased.iter().enumerate().skip(3) {
        s.mark_running(l.id, runner(), l.attempt, Duration::from_secs(60))
            .await
            .unwrap();
        let end = match i {
            5 | 6 => Some(TaskStatus::Complete),
            7 => Some(TaskStatus::Error),
            _ => None,
        };
        if let Some(st) = end {
            s.complete(l.id, runner(), l.attempt, outcome(st))
                .await
                .unwrap();
        }
    }

    let everything = TaskFilter {
        page: Page::new(None, Some(100)),
        ..TaskFilter::default()
    };
    let all = s.tasks(w.project, &everything).await.unwrap();
    assert_eq!(all.len(), 30, "only this project's tasks");
    assert!(all.windows(2).all(|p| p[0].id > p[1].id), "newest first");
    let count = |st| all.iter().filter(|t| t.status == st).count();
    assert_eq!(
        [
            count(TaskStatus::Preparing),
            count(TaskStatus::Running),
            count(TaskStatus::Complete),
            count(TaskStatus::Error),
            count(TaskStatus::Queued),
        ],
        [3, 2, 2, 1, 22]
    );

    let mid = all[12].created_at;
    let cases: Vec<(&str, TaskFilter, Matcher)> = vec![
        ("none", TaskFilter::default(), Box::new(|_| true)),
        (
            "code",
            TaskFilter {
                code_name: Some("b".into()),
                ..TaskFilter::default()
            },
            Box::new(|t| t.code_name == "b"),
        ),
        (
            "label",
            TaskFilter {
                label: Some("nightly".into()),
                ..TaskFilter::default()
            },
            Box::new(|t| t.label.as_deref() == Some("nightly")),
        ),
        (
            "cluster",
            TaskFilter {
                cluster: Some("gpu".into()),
                ..TaskFilter::default()
            },
            Box::new(|t| t.cluster == "gpu"),
        ),
        (
            "queued",
            TaskFilter {
                statuses: vec![TaskStatus::Queued],
                ..TaskFilter::default()
            },
            Box::new(|t| t.status == TaskStatus::Queued),
        ),
        (
            "preparing or complete",
            TaskFilter {
                statuses: vec![TaskStatus::Preparing, TaskStatus::Complete],
                ..TaskFilter::default()
            },
            Box::new(|t| matches!(t.status, TaskStatus::Preparing | TaskStatus::Complete)),
        ),
        (
            "running, error or killed, of code a",
            TaskFilter {
                statuses: vec![TaskStatus::Running, TaskStatus::Error, TaskStatus::Killed],
                code_name: Some("a".into()),
                ..TaskFilter::default()
            },
            Box::new(|t| {
                t.code_name == "a"
                    && matches!(
                        t.status,
                        TaskStatus::Running | TaskStatus::Error | TaskStatus::Killed
                    )
            }),
        ),
        (
            "matching nothing",
            TaskFilter {
                statuses: vec![TaskStatus::Timeout],
                ..TaskFilter::default()
            },
            Box::new(|_| false),
        ),
        (
            "time range",
            TaskFilter {
                from_time: Some(mid),
                to_time: Some(mid),
                label: Some("nightly".into()),
                ..TaskFilter::default()
            },
            Box::new(move |t| t.created_at == mid && t.label.as_deref() == Some("nightly")),
        ),
        (
            "from a time",
            TaskFilter {
                from_time: Some(mid + chrono::Duration::microseconds(1)),
                ..TaskFilter::default()
            },
            Box::new(move |t| t.created_at > mid),
        ),
    ];
    for (name, f, keep) in cases {
        let want: Vec<Task> = all.iter().filter(|t| keep(t)).cloned().collect();
        let first = s
            .tasks(
                w.project,
                &TaskFilter {
                    page: Page::new(None, Some(100)),
                    ..f.clone()
                },
            )
            .await
            .unwrap();
        assert_eq!(ids(&first), ids(&want), "{name}: one long page");
        let by_cursor = walk_by_cursor(s, w.project, &f).await;
        assert_eq!(ids(&by_cursor), ids(&want), "{name}: by cursor");
        let by_page = walk_by_page(s, w.project, &f).await;
        assert_eq!(ids(&by_page), ids(&want), "{name}: by page");
    }

    // A cursor from another project's list reads nothing of it.
    let theirs = s.tasks(other, &everything).await.unwrap();
    assert_eq!(theirs.len(), 5);
    let after_theirs = TaskFilter {
        before: Some(theirs[0].id),
        page: Page::new(None, Some(100)),
        ..TaskFilter::default()
    };
    let mine = s.tasks(w.project, &after_theirs).await.unwrap();
    assert!(mine.iter().all(|t| t.project_id == w.project));
}
