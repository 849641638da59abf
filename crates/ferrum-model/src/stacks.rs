//! The default stack catalog: stack or runtime name → the image its tasks run in. One table
//! for the API (which resolves a code's image and lists `GET /2/stacks`) and the runner (which
//! builds the images), so the two cannot disagree.

/// Image of the `sh` and `binary` stacks: Debian bookworm with bash, nodejs, ruby, GNU wget and
/// curl (IronWorker's official Node and Ruby clients upload runtime `sh` with a runner script
/// that execs `node`/`ruby`), busybox applets for the rest, and a `ferrum` user (uid 1000).
pub const IMAGE_SH: &str = "ferrum/stack-sh:2";
/// Image of the Python stacks: Debian bookworm's python3 (3.11), `python` → `python3`.
pub const IMAGE_PYTHON: &str = "ferrum/stack-python:1";
/// Image of the Node stacks: Debian bookworm's nodejs (18).
pub const IMAGE_NODE: &str = "ferrum/stack-node:1";

/// Stack and runtime names and the image each runs in.
pub const CATALOG: &[(&str, &str)] = &[
    ("sh", IMAGE_SH),
    ("binary", IMAGE_SH),
    ("python", IMAGE_PYTHON),
    ("python-3", IMAGE_PYTHON),
    ("python-3.11", IMAGE_PYTHON),
    ("node", IMAGE_NODE),
    ("node-18", IMAGE_NODE),
];

/// The image for a stack or runtime name.
pub fn image_for(name: &str) -> Option<&'static str> {
    CATALOG.iter().find(|(n, _)| *n == name).map(|(_, i)| *i)
}
