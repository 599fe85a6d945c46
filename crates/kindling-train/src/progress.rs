//! Progress bars on stderr with rate and ETA (hidden when stderr is not a
//! terminal, e.g. in CI logs, where one line per epoch is printed instead).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// A rate as people read it: thousands separated by commas, no decimals
/// from 100 up, one below ("20,622", "87.5", "0.4").
pub fn rate(per_sec: f64) -> String {
    if !per_sec.is_finite() {
        return per_sec.to_string();
    }
    if per_sec.abs() < 100.0 {
        return format!("{per_sec:.1}");
    }
    let digits = format!("{:.0}", per_sec.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if per_sec < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// "1 epoch", "2 epochs".
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

pub fn bar(len: u64, prefix: String, unit: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr_with_hz(10));
    // indicatif's own {per_sec} prints three decimals ("20,622.123/s").
    let template = format!(
        "{{prefix}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{rate}} {unit}/s eta {{eta}} {{msg}}"
    );
    pb.set_style(
        ProgressStyle::with_template(&template)
            .expect("static template parses")
            .with_key(
                "rate",
                |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = w.write_str(&rate(state.per_sec()));
                },
            )
            .progress_chars("=> "),
    );
    pb.set_prefix(prefix);
    pb
}

#[cfg(test)]
mod tests {
    use super::{count, rate};

    #[test]
    fn rates_have_thousands_separators_and_at_most_one_decimal() {
        assert_eq!(rate(20_622.123), "20,622");
        assert_eq!(rate(1_234_567.9), "1,234,568");
        assert_eq!(rate(999.4), "999");
        assert_eq!(rate(87.54), "87.5");
        assert_eq!(rate(0.04), "0.0");
    }

    #[test]
    fn counts_say_one_in_the_singular() {
        assert_eq!(count(1, "epoch"), "1 epoch");
        assert_eq!(count(2, "epoch"), "2 epochs");
        assert_eq!(count(0, "epoch"), "0 epochs");
    }
}
