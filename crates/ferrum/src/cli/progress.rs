//! Progress bars for the slow steps of an upload (zipping, sending). They draw on stderr only
//! when it is a terminal: in a pipe or a log file they print nothing, so redirected output
//! stays free of `\r` updates.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A byte-counting bar labelled `what`; hidden unless `show` and stderr is a terminal.
pub fn bar(what: &str, total: u64, show: bool) -> ProgressBar {
    let target = if show {
        // Hidden by indicatif itself when stderr is not a terminal.
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    let style = ProgressStyle::with_template(
        "{msg:>9} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {elapsed}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_owned());
    bar
}
