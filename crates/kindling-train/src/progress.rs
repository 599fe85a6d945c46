//! Progress bars on stderr with rate and ETA (hidden when stderr is not a
//! terminal, e.g. in CI logs, where one line per epoch is printed instead).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub fn bar(len: u64, prefix: String, unit: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr_with_hz(10));
    let template =
        format!("{{prefix}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{per_sec}} eta {{eta}} {{msg}}");
    pb.set_style(
        ProgressStyle::with_template(&template)
            .expect("static template parses")
            .progress_chars("=> "),
    );
    pb.set_prefix(prefix);
    pb
}
