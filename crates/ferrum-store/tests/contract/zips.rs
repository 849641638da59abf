//! Which code zips the blob store may delete: a deleted code's, and revisions older than the
//! kept window, never one an unfinished task is bound to or another revision still shares.

use ferrum_model::code::ZipInfo;
use ferrum_model::{CodeSpec, Id, NewRevision};

use super::world::{world, Backend, World};

async fn upload(w: &World, name: &str, key: &str) -> Id {
    let rev = NewRevision {
        name: name.into(),
        spec: CodeSpec::default(),
        zip: Some(ZipInfo {
            key: key.into(),
            checksum: "00".into(),
            size: 1,
        }),
    };
    w.store
        .put_revision(w.project, rev)
        .await
        .unwrap()
        .latest
        .id
}

async fn unneeded(w: &World, keep: Option<u32>) -> Vec<Id> {
    let mut ids: Vec<Id> = w
        .store
        .unneeded_zips(keep, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<Id>) -> Vec<Id> {
    ids.sort();
    ids
}

pub async fn zips_go_when_no_task_needs_them(backend: Backend) {
    let w = world(backend).await;
    let r1 = upload(&w, "c", "k1").await;
    let r2 = upload(&w, "c", "k2").await;
    // An options-only upload keeps its predecessor's zip.
    let r3 = upload(&w, "c", "k2").await;
    let r4 = upload(&w, "c", "k4").await;
    assert!(
        unneeded(&w, None).await.is_empty(),
        "no setting keeps every zip"
    );
    assert_eq!(unneeded(&w, Some(2)).await, sorted(vec![r1, r2]));
    assert_eq!(unneeded(&w, Some(1)).await, sorted(vec![r1, r2, r3]));

    // k2 stays while r3 holds it; the last holder frees it.
    assert!(w.store.zip_freed(r1, "k1").await.unwrap());
    assert!(!w.store.zip_freed(r2, "k2").await.unwrap());
    assert!(w.store.zip_freed(r3, "k2").await.unwrap());
    assert!(unneeded(&w, Some(1)).await.is_empty());

    // A task bound to a revision keeps its zip until the task ends, past a delete too.
    let task = w.queue("c", 0, 0).await;
    let r5 = upload(&w, "c", "k5").await;
    assert!(
        unneeded(&w, Some(1)).await.is_empty(),
        "r4 has a queued task"
    );
    let code = w.store.code_by_name(w.project, "c").await.unwrap().unwrap();
    assert!(w.store.delete_code(w.project, code.id).await.unwrap());
    // Deleting cancelled the task: both remaining zips may go, whatever the setting.
    assert_eq!(unneeded(&w, None).await, sorted(vec![r4, r5]));
    let t = w.store.task(w.project, task).await.unwrap().unwrap();
    assert!(t.status.is_terminal(), "{:?}", t.status);

    // A queued task of a live code holds its (older) revision.
    let d1 = upload(&w, "d", "d1").await;
    let queued = w.queue("d", 0, 0).await;
    let d2 = upload(&w, "d", "d2").await;
    assert_eq!(unneeded(&w, None).await, sorted(vec![r4, r5]));
    assert!(!unneeded(&w, Some(1)).await.contains(&d1));
    w.store.cancel(w.project, queued).await.unwrap();
    assert!(unneeded(&w, Some(1)).await.contains(&d1));
    assert!(!unneeded(&w, Some(1)).await.contains(&d2));
}
