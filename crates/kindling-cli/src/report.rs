//! Where a command's words go: the human report to stdout, or, with
//! `--json`, to stderr so that stdout ends with exactly one JSON object.

use serde_json::Value;

pub struct Report {
    json: bool,
}

impl Report {
    pub fn new(json: bool) -> Self {
        Report { json }
    }

    pub fn line(&self, text: impl AsRef<str>) {
        if self.json {
            eprintln!("{}", text.as_ref());
        } else {
            println!("{}", text.as_ref());
        }
    }

    /// Ends the command: prints the JSON object when asked for.
    pub fn finish(&self, value: Value) {
        if self.json {
            println!("{value}");
        }
    }
}
