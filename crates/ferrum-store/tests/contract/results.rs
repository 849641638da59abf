//! Task results (fenced, per project) and task tokens (valid only while their attempt runs).

use std::time::Duration;

use ferrum_model::{CodeSpec, Id, TaskStatus};
use ferrum_store::{Fenced, NewTaskToken, StoredResult, TaskGrant};

use super::world::{outcome, runner, spec, task, world, Backend};

fn inline(data: &[u8]) -> StoredResult {
    StoredResult {
        size: data.len() as i64,
        content_type: "application/json".into(),
        data: Some(data.to_vec()),
        blob_key: None,
    }
}

pub async fn results_are_fenced_and_scoped_to_their_project(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let id = w.queue("c", 0, 0).await;
    let s = &*w.store;
    assert_eq!(
        s.put_result(id, runner(), 1, inline(b"1")).await.unwrap(),
        Fenced::NotHeld
    );
    let attempt = w.lease(1).await[0].attempt;
    assert_eq!(
        s.put_result(id, Id::generate(), attempt, inline(b"1"))
            .await
            .unwrap(),
        Fenced::NotHeld,
        "only the runner holding the lease may store its result"
    );
    assert_eq!(
        s.put_result(id, runner(), attempt + 1, inline(b"1"))
            .await
            .unwrap(),
        Fenced::Stale
    );
    assert_eq!(
        s.put_result(id, runner(), attempt, inline(b"[1]"))
            .await
            .unwrap(),
        Fenced::Current(())
    );
    let blob = StoredResult {
        size: 5000,
        content_type: "application/octet-stream".into(),
        data: None,
        blob_key: Some("results/x/1".into()),
    };
    assert_eq!(
        s.put_result(id, runner(), attempt, blob.clone())
            .await
            .unwrap(),
        Fenced::Current(())
    );
    s.complete(id, runner(), attempt, outcome(TaskStatus::Complete))
        .await
        .unwrap();
    assert_eq!(
        s.put_result(id, runner(), attempt, inline(b"2"))
            .await
            .unwrap(),
        Fenced::Stale
    );
    assert_eq!(s.result(w.project, id).await.unwrap(), Some(blob));
    assert_eq!(
        s.task(w.project, id).await.unwrap().unwrap().result_size,
        Some(5000)
    );
    assert_eq!(
        s.result(Id::generate(), id).await.unwrap(),
        None,
        "another project"
    );
    let none = w.queue("c", 0, 0).await;
    assert_eq!(s.result(w.project, none).await.unwrap(), None);
    assert_eq!(
        s.task(w.project, none).await.unwrap().unwrap().result_size,
        None
    );
}

pub async fn task_tokens_live_while_their_attempt_runs(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let id = w.queue("c", 0, 0).await;
    let s = &*w.store;
    let attempt = s.lease(&spec(1, Duration::ZERO)).await.unwrap()[0].attempt;
    let token = NewTaskToken {
        token: "ftt_one".into(),
        task_id: id,
        project_id: w.project,
        attempt,
    };
    s.issue_task_tokens(&[token]).await.unwrap();
    let grant = TaskGrant {
        task_id: id,
        project_id: w.project,
        attempt,
        spawned: 0,
    };
    assert_eq!(
        s.authenticate_task_token("ftt_one").await.unwrap(),
        Some(grant)
    );
    assert_eq!(s.authenticate_task_token("ftt_two").await.unwrap(), None);
    assert!(
        s.authenticate("ftt_one").await.unwrap().is_none(),
        "not a user token"
    );

    // Counted spawns stop at the cap, all or nothing.
    assert!(s.reserve_spawns("ftt_one", 2, 3).await.unwrap());
    assert!(!s.reserve_spawns("ftt_one", 2, 3).await.unwrap());
    assert!(s.reserve_spawns("ftt_one", 1, 3).await.unwrap());
    let g = s.authenticate_task_token("ftt_one").await.unwrap().unwrap();
    assert_eq!(g.spawned, 3);

    // Its lease lost and the task requeued: the token is dead, and stays so for the next
    // attempt, which gets its own.
    tokio::time::sleep(Duration::from_millis(5)).await;
    s.reap_expired(5).await.unwrap();
    assert_eq!(s.authenticate_task_token("ftt_one").await.unwrap(), None);
    let next = w.lease(1).await[0].attempt;
    assert_eq!(s.authenticate_task_token("ftt_one").await.unwrap(), None);
    let token = NewTaskToken {
        token: "ftt_next".into(),
        task_id: id,
        project_id: w.project,
        attempt: next,
    };
    s.issue_task_tokens(&[token]).await.unwrap();
    assert!(s
        .authenticate_task_token("ftt_next")
        .await
        .unwrap()
        .is_some());
    // A final state ends it at once; revoking removes the rows.
    s.complete(id, runner(), next, outcome(TaskStatus::Complete))
        .await
        .unwrap();
    assert_eq!(s.authenticate_task_token("ftt_next").await.unwrap(), None);
    assert_eq!(s.revoke_task_tokens(&[id]).await.unwrap(), 2);
}

pub async fn a_task_token_never_outlives_the_task_timeout(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let mut t = task("c", 0, 0);
    t.timeout = 1;
    let id = w.store.enqueue(w.project, vec![t]).await.unwrap()[0];
    let s = &*w.store;
    let attempt = w.lease(1).await[0].attempt;
    s.mark_running(id, runner(), attempt, Duration::from_secs(60))
        .await
        .unwrap();
    let token = NewTaskToken {
        token: "ftt_short".into(),
        task_id: id,
        project_id: w.project,
        attempt,
    };
    s.issue_task_tokens(&[token]).await.unwrap();
    assert!(s
        .authenticate_task_token("ftt_short")
        .await
        .unwrap()
        .is_some());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(s.authenticate_task_token("ftt_short").await.unwrap(), None);
}

pub async fn children_carry_their_parent_and_depth_counts_ancestors(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let root = w.queue("c", 0, 0).await;
    let mut child = task("c", 0, 0);
    child.origin.parent_id = Some(root);
    let child = w.store.enqueue(w.project, vec![child]).await.unwrap()[0];
    let mut grandchild = task("c", 0, 0);
    grandchild.origin.parent_id = Some(child);
    let grandchild = w.store.enqueue(w.project, vec![grandchild]).await.unwrap()[0];
    let s = &*w.store;
    assert_eq!(s.task_depth(root).await.unwrap(), 0);
    assert_eq!(s.task_depth(grandchild).await.unwrap(), 2);
    let filter = ferrum_model::TaskFilter {
        parent_id: Some(root),
        ..Default::default()
    };
    let listed: Vec<Id> = s
        .tasks(w.project, &filter)
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(listed, vec![child]);
    let c = s.task(w.project, child).await.unwrap().unwrap();
    assert_eq!(c.origin.parent_id, Some(root));
    // A failed child's automatic retry is still its parent's child.
    let retrying = CodeSpec {
        retries: 1,
        ..CodeSpec::default()
    };
    w.code("r", retrying).await;
    let mut r = task("r", 2, 0);
    r.origin.parent_id = Some(root);
    let r = w.store.enqueue(w.project, vec![r]).await.unwrap()[0];
    let leased = w.lease(10).await;
    let l = leased.iter().find(|l| l.id == r).unwrap();
    let Fenced::Current(Some(retry)) = s
        .complete(r, runner(), l.attempt, outcome(TaskStatus::Error))
        .await
        .unwrap()
    else {
        panic!("a retry");
    };
    let retry = s.task(w.project, retry).await.unwrap().unwrap();
    assert_eq!(retry.origin.parent_id, Some(root));
}
