//! Multiple-choice tasks as JSONL: one record a line,
//! `{"question": "...", "choices": ["...", ...], "answer": 0}`, with any
//! other fields ignored except an optional `"subject"` string, which the
//! report groups by. Blank lines are skipped. A bad record is an error
//! naming the file, its line and the field.

use crate::Result;
use serde_json::Value;
use std::path::Path;

#[derive(Clone, Debug, PartialEq)]
pub struct ChoiceItem {
    pub question: String,
    pub choices: Vec<String>,
    /// Index into `choices` of the correct answer.
    pub answer: usize,
    pub subject: Option<String>,
    /// 1-based line of the file the record is on.
    pub line: usize,
}

impl ChoiceItem {
    pub fn correct(&self) -> &str {
        &self.choices[self.answer]
    }
}

/// The items of a JSONL task file.
pub fn read_task(path: &Path) -> Result<Vec<ChoiceItem>> {
    let text = crate::corpus::read_utf8(path)?;
    parse_task(&text, &path.display().to_string())
}

/// The items of a JSONL task; `name` is the file named in errors.
pub fn parse_task(text: &str, name: &str) -> Result<Vec<ChoiceItem>> {
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        items.push(parse_record(line, i + 1).map_err(|e| format!("{name} line {}: {e}", i + 1))?);
    }
    if items.is_empty() {
        return Err(format!(
            "{name}: no items (one JSON object a line, with `question`, `choices` and `answer`)"
        )
        .into());
    }
    Ok(items)
}

fn parse_record(line: &str, number: usize) -> std::result::Result<ChoiceItem, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    let record = v.as_object().ok_or(
        "not a JSON object (expected {\"question\": ..., \"choices\": [...], \"answer\": index})",
    )?;
    let field = |name: &str| record.get(name).ok_or(format!("no `{name}` field"));
    let question = field("question")?
        .as_str()
        .ok_or("`question` must be a string")?;
    if question.trim().is_empty() {
        return Err("`question` is empty".into());
    }
    let choices = field("choices")?
        .as_array()
        .ok_or("`choices` must be an array of strings")?;
    if choices.len() < 2 {
        return Err(format!(
            "`choices` needs at least 2 answers to choose from, has {}",
            choices.len()
        ));
    }
    let choices = choices
        .iter()
        .enumerate()
        .map(|(k, c)| match c.as_str() {
            Some(s) if !s.trim().is_empty() => Ok(s.to_string()),
            Some(_) => Err(format!("`choices` {k} is empty")),
            None => Err(format!("`choices` {k} must be a string, got {c}")),
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let answer = field("answer")?;
    let answer = answer.as_u64().ok_or(format!(
        "`answer` must be a choice's index (0, 1, ...), got {answer}"
    ))? as usize;
    if answer >= choices.len() {
        return Err(format!(
            "`answer` {answer} is out of range: there are {} choices, indexed from 0",
            choices.len()
        ));
    }
    let subject = match record.get("subject") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(format!("`subject` must be a string, got {other}")),
    };
    Ok(ChoiceItem {
        question: question.to_string(),
        choices,
        answer,
        subject,
        line: number,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        parse_task(text, "t.jsonl").unwrap_err().to_string()
    }

    #[test]
    fn records_are_read_with_their_lines_and_blank_lines_skipped() {
        let items = parse_task(
            "{\"question\": \"2+2?\", \"choices\": [\"3\", \"4\"], \"answer\": 1, \"subject\": \"math\"}\n\n{\"question\": \"天空？\", \"choices\": [\"蓝\", \"绿\", \"红\"], \"answer\": 0, \"id\": 7}\n",
            "t.jsonl",
        )
        .unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].correct(), "4");
        assert_eq!(items[0].subject.as_deref(), Some("math"));
        assert_eq!(items[1].line, 3);
        assert_eq!(items[1].choices, ["蓝", "绿", "红"]);
    }

    #[test]
    fn a_bad_record_names_the_file_line_and_field() {
        let ok = "{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": 0}\n";
        for (bad, want) in [
            (
                "{\"choices\": [\"a\", \"b\"], \"answer\": 0}",
                "no `question` field",
            ),
            ("{\"question\": \"q\", \"answer\": 0}", "no `choices` field"),
            (
                "{\"question\": \"q\", \"choices\": [\"a\", \"b\"]}",
                "no `answer` field",
            ),
            (
                "{\"question\": \"q\", \"choices\": [], \"answer\": 0}",
                "`choices` needs at least 2",
            ),
            (
                "{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": 2}",
                "`answer` 2 is out of range",
            ),
            (
                "{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": -1}",
                "`answer` must be a choice's index",
            ),
            (
                "{\"question\": \"q\", \"choices\": [\"a\", \" \"], \"answer\": 0}",
                "`choices` 1 is empty",
            ),
            (
                "{\"question\": \"q\", \"choices\": [\"a\", 3], \"answer\": 0}",
                "`choices` 1 must be a string",
            ),
            (
                "{\"question\": \"\", \"choices\": [\"a\", \"b\"], \"answer\": 0}",
                "`question` is empty",
            ),
            ("[1, 2]", "not a JSON object"),
            ("{\"question\": \"q\",", "not JSON"),
        ] {
            let e = error(&format!("{ok}\n{bad}\n"));
            assert!(e.starts_with("t.jsonl line 3: "), "{e}");
            assert!(e.contains(want), "{e} (wanted {want})");
            assert!(!e.contains('\n'), "{e}");
        }
        assert!(error("\n\n").contains("no items"));
    }
}
