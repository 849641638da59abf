//! Local stack image builds (registry-free) and the images' user layout.

use ferrum_runner::stacks::{self, BuildStatus, StackError};

#[tokio::test]
async fn sh_stack_builds_skips_and_rebuilds() {
    let first = stacks::build(&["sh".to_owned(), "binary".to_owned()], false)
        .await
        .unwrap();
    assert_eq!(first.len(), 1, "sh and binary share one image");
    assert_eq!(first[0].image, stacks::IMAGE_SH);
    let again = stacks::build(&["sh".to_owned()], false).await.unwrap();
    assert_eq!(again[0].status, BuildStatus::Skipped);
    let forced = stacks::build(&["sh".to_owned()], true).await.unwrap();
    assert_eq!(forced[0].status, BuildStatus::Built);

    let out = std::process::Command::new("docker")
        .args([
            "run",
            "--rm",
            "--user",
            "1000:1000",
            stacks::IMAGE_SH,
            "sh",
            "-c",
            "id -un; echo $PATH; ls /usr/bin/env",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("ferrum\n"), "{text}");
}

#[tokio::test]
async fn unknown_stack_is_rejected() {
    let err = stacks::build(&["cobol".to_owned()], false)
        .await
        .unwrap_err();
    assert!(matches!(err, StackError::Unknown(name) if name == "cobol"));
}
