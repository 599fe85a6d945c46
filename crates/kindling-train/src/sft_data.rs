//! Chat data for supervised fine-tuning: conversations read from Alpaca
//! JSON or JSONL, rendered with the model's own chat template and cut into
//! token ids with a mask that says which tokens the loss is taken on — the
//! assistant's answers, never the prompt.
//!
//! The mask comes from the template itself: for each assistant turn, the
//! conversation up to that turn is rendered with the assistant's turn opened
//! (`add_generation_prompt`), then again with the turn's text. What the
//! second adds to the first is the answer, closing tokens included
//! (`…<|im_end|>`), so the model learns to stop. Each piece is tokenized on
//! its own and the ids concatenated, so no BPE merge crosses a boundary
//! between what is trained and what is not.

use crate::Result;
use kindling_data::tokenizer::Tokenizer;
use kindling_models::chat::{ChatTemplate, Message};
use serde_json::Value;
use std::io::Read;
use std::path::Path;

/// One conversation: messages in order, at least one from the assistant.
#[derive(Clone, Debug, PartialEq)]
pub struct Conversation {
    pub messages: Vec<Message>,
}

/// A conversation as token ids; `trained[t]` says whether `ids[t]` is a
/// target of the loss (predicted from `ids[..t]`).
#[derive(Clone, Debug, PartialEq)]
pub struct SftExample {
    pub ids: Vec<u32>,
    pub trained: Vec<bool>,
}

impl SftExample {
    /// Tokens the loss is taken on.
    pub fn trained_tokens(&self) -> usize {
        // The first token has nothing before it to be predicted from.
        self.trained.iter().skip(1).filter(|&&t| t).count()
    }
}

/// Reads conversations from `path`: an Alpaca JSON array
/// (`[{instruction, input, output}]`), or JSONL with one record a line in
/// any of three shapes: `{"messages": [{"role", "content"}, …]}`,
/// `{"instruction", "input"?, "output"}` or `{"prompt", "response"}`.
/// A `.gz` suffix is decompressed. Errors name the file, line and field.
/// Records whose assistant answer is empty are left out; the second number
/// says how many.
pub fn read_conversations(path: &Path) -> Result<(Vec<Conversation>, usize)> {
    let text = read_text_maybe_gz(path)?;
    parse_conversations(&text, &path.display().to_string())
}

/// A UTF-8 text file, decompressed first when its name ends in `.gz`;
/// errors name the file.
pub fn read_text_maybe_gz(path: &Path) -> Result<String> {
    let raw = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| format!("{}: not a gzip file ({e})", path.display()))?;
        out
    } else {
        raw
    };
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "{}: not UTF-8 text (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
        .into()
    })
}

/// [`read_conversations`] on text already read; `source` names it in errors.
pub fn parse_conversations(text: &str, source: &str) -> Result<(Vec<Conversation>, usize)> {
    let mut parsed = Vec::new();
    if text.trim_start().starts_with('[') {
        let v: Value =
            serde_json::from_str(text).map_err(|e| format!("{source}: not a JSON array ({e})"))?;
        for (i, r) in v.as_array().expect("starts with [").iter().enumerate() {
            parsed.push(record(r).map_err(|e| format!("{source}: record {}: {e}", i + 1))?);
        }
    } else {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line)
                .map_err(|e| format!("{source}:{}: not a JSON object ({e})", i + 1))?;
            parsed.push(record(&v).map_err(|e| format!("{source}:{}: {e}", i + 1))?);
        }
    }
    let total = parsed.len();
    let out: Vec<Conversation> = parsed.into_iter().flatten().collect();
    if out.is_empty() {
        return Err(format!("{source}: no records with an answer").into());
    }
    let empty = total - out.len();
    Ok((out, empty))
}

fn field<'a>(v: &'a Value, name: &str) -> std::result::Result<Option<&'a str>, String> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("field `{name}` is not a string")),
    }
}

fn record(v: &Value) -> std::result::Result<Option<Conversation>, String> {
    if !v.is_object() {
        return Err("not a JSON object".into());
    }
    let messages = if let Some(list) = v.get("messages") {
        let list = list.as_array().ok_or("field `messages` is not an array")?;
        list.iter()
            .enumerate()
            .map(|(i, m)| {
                let role = field(m, "role")
                    .map_err(|e| format!("messages[{i}]: {e}"))?
                    .ok_or(format!("messages[{i}]: no field `role`"))?;
                let content = field(m, "content")
                    .map_err(|e| format!("messages[{i}]: {e}"))?
                    .ok_or(format!("messages[{i}]: no field `content`"))?;
                Message::new(role, content).map_err(|e| format!("messages[{i}]: {e}"))
            })
            .collect::<std::result::Result<Vec<_>, String>>()?
    } else if let Some(instruction) = field(v, "instruction")? {
        let output = field(v, "output")?.ok_or("no field `output` beside `instruction`")?;
        let user = match field(v, "input")? {
            Some(input) if !input.trim().is_empty() => format!("{instruction}\n\n{input}"),
            _ => instruction.to_string(),
        };
        vec![
            Message::new("user", user).expect("known role"),
            Message::new("assistant", output).expect("known role"),
        ]
    } else if let Some(prompt) = field(v, "prompt")? {
        let response = field(v, "response")?.ok_or("no field `response` beside `prompt`")?;
        vec![
            Message::new("user", prompt).expect("known role"),
            Message::new("assistant", response).expect("known role"),
        ]
    } else {
        return Err(
            "expected a field `messages`, `instruction` (with `output`) or `prompt` (with `response`)"
                .into(),
        );
    };
    if !messages.iter().any(|m| m.role == "assistant") {
        return Err("no assistant message to learn from".into());
    }
    if messages
        .iter()
        .any(|m| m.role == "assistant" && m.content.trim().is_empty())
    {
        // Nothing to learn (Chinese Alpaca has 11 such records): left out, counted.
        return Ok(None);
    }
    Ok(Some(Conversation { messages }))
}

/// Whether a conversation is held out for validation: a fixed rule on its
/// first user message (FNV-1a hash, 1 in `every`), so the split does not
/// move when records are added, removed or reordered.
pub fn is_held_out(c: &Conversation, every: u64) -> bool {
    let key = c
        .messages
        .iter()
        .find(|m| m.role == "user")
        .map(|m| m.content.as_str())
        .unwrap_or("");
    fnv1a(key).is_multiple_of(every)
}

/// FNV-1a, 64 bits: the fixed hash the held-out rules split data by (the
/// same text lands in the same split on every machine and run).
pub fn fnv1a(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The conversation as ids with the assistant-token mask, cut to
/// `max_len` tokens (a cut keeps the beginning; an example with no trained
/// token left after the cut is `None`).
pub fn encode(
    tokenizer: &Tokenizer,
    template: &ChatTemplate,
    c: &Conversation,
    max_len: usize,
) -> Result<Option<SftExample>> {
    let mut ids = Vec::new();
    let mut trained = Vec::new();
    let mut done = String::new();
    let push = |text: &str, train: bool, ids: &mut Vec<u32>, trained: &mut Vec<bool>| {
        let piece = tokenizer.encode(text)?;
        trained.extend(std::iter::repeat_n(train, piece.len()));
        ids.extend(piece);
        Ok::<(), crate::Error>(())
    };
    for (i, m) in c.messages.iter().enumerate() {
        if m.role != "assistant" {
            continue;
        }
        let prompt = template.render(&c.messages[..i], true)?;
        let full = template.render(&c.messages[..=i], false)?;
        let (Some(new_prompt), Some(answer)) =
            (prompt.strip_prefix(&done), full.strip_prefix(&prompt))
        else {
            return Err(format!(
                "the chat template does not render assistant turn {} as an extension of the \
                 conversation before it, so the answer's tokens cannot be told apart",
                i + 1
            )
            .into());
        };
        push(new_prompt, false, &mut ids, &mut trained)?;
        push(answer, true, &mut ids, &mut trained)?;
        done = full;
    }
    ids.truncate(max_len);
    trained.truncate(max_len);
    let ex = SftExample { ids, trained };
    Ok((ex.trained_tokens() > 0).then_some(ex))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindling_models::chat::CHATML;

    #[test]
    fn all_three_jsonl_shapes_and_alpaca_json_parse() {
        let jsonl = r#"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}
{"instruction": "Add.", "input": "2 and 3", "output": "5"}

{"prompt": "Hi", "response": "Hello!"}"#;
        let (cs, empty) = parse_conversations(jsonl, "t.jsonl").unwrap();
        assert_eq!(empty, 0);
        assert_eq!(cs.len(), 3);
        assert_eq!(cs[0].messages.len(), 3);
        assert_eq!(cs[1].messages[0].content, "Add.\n\n2 and 3");
        assert_eq!(cs[2].messages[1].content, "Hello!");
        let alpaca = r#"[{"instruction": "Name a colour.", "input": "", "output": "Blue."}]"#;
        let (cs, _) = parse_conversations(alpaca, "a.json").unwrap();
        let (_, empty) = parse_conversations(
            r#"[{"instruction": "a", "output": ""}, {"instruction": "b", "output": "c"}]"#,
            "e.json",
        )
        .unwrap();
        assert_eq!(empty, 1, "an empty answer is left out and counted");
        assert_eq!(cs[0].messages[0].content, "Name a colour.");
    }

    #[test]
    fn bad_records_name_the_line_and_the_field() {
        let err = |text: &str| {
            parse_conversations(text, "d.jsonl")
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("{\"instruction\": \"x\"}"),
            "d.jsonl:1: no field `output` beside `instruction`"
        );
        let e = err("{\"prompt\": \"a\", \"response\": \"b\"}\n{\"messages\": [{\"role\": \"robot\", \"content\": \"x\"}]}");
        assert!(
            e.starts_with("d.jsonl:2: messages[0]: unknown chat role `robot`"),
            "{e}"
        );
        assert!(err("{\"text\": 1}").contains("expected a field `messages`"));
        assert!(err("not json").starts_with("d.jsonl:1: not a JSON object"));
        assert!(
            err("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}")
                .contains("no assistant message")
        );
        assert!(
            err("[{\"instruction\": 3}]").contains("record 1: field `instruction` is not a string")
        );
    }

    fn byte_tokenizer() -> Tokenizer {
        // A byte-level BPE trained on a little ChatML, with the template's
        // markers as special tokens.
        let text = "<|im_start|>user\nhello there<|im_end|>\n<|im_start|>assistant\nhi, hello!<|im_end|>\n".repeat(20);
        kindling_data::tokenizer::train_bpe(
            std::iter::once(text),
            300,
            &["<|im_start|>", "<|im_end|>"],
        )
        .unwrap()
    }

    #[test]
    fn only_the_answers_are_trained_and_the_pieces_join_to_the_whole() {
        let tok = byte_tokenizer();
        let tmpl = ChatTemplate::new(CHATML, "", "<|im_end|>").unwrap();
        let c = Conversation {
            messages: vec![
                Message::new("user", "hello there").unwrap(),
                Message::new("assistant", "hi, hello!").unwrap(),
                Message::new("user", "again").unwrap(),
                Message::new("assistant", "hello again").unwrap(),
            ],
        };
        let ex = encode(&tok, &tmpl, &c, 10_000).unwrap().unwrap();
        let whole = tmpl.render(&c.messages, false).unwrap();
        assert_eq!(tok.decode(&ex.ids).unwrap(), whole);
        // The trained tokens, in runs, decode to the answers with their end marker.
        let mut runs = Vec::new();
        let mut cur = Vec::new();
        for (&id, &t) in ex.ids.iter().zip(&ex.trained) {
            if t {
                cur.push(id);
            } else if !cur.is_empty() {
                runs.push(tok.decode(&std::mem::take(&mut cur)).unwrap());
            }
        }
        if !cur.is_empty() {
            runs.push(tok.decode(&cur).unwrap());
        }
        assert_eq!(runs, ["hi, hello!<|im_end|>\n", "hello again<|im_end|>\n"]);
        // Cut inside the first prompt: nothing left to learn.
        assert!(encode(&tok, &tmpl, &c, 3).unwrap().is_none());
    }

    #[test]
    fn a_template_that_rewrites_earlier_turns_is_refused() {
        let tok = byte_tokenizer();
        // Shows only the last message: turn 2 does not extend turn 1.
        let tmpl = ChatTemplate::new(
            "{{ messages[-1]['content'] }}{% if add_generation_prompt %}>{% endif %}",
            "",
            "",
        )
        .unwrap();
        let c = Conversation {
            messages: vec![
                Message::new("user", "a").unwrap(),
                Message::new("assistant", "b").unwrap(),
            ],
        };
        let e = encode(&tok, &tmpl, &c, 100).unwrap_err().to_string();
        assert!(e.contains("assistant turn 2"), "{e}");
    }

    #[test]
    fn the_held_out_rule_is_fixed_and_near_its_rate() {
        let c = |s: &str| Conversation {
            messages: vec![
                Message::new("user", s).unwrap(),
                Message::new("assistant", "x").unwrap(),
            ],
        };
        let held = (0..10_000)
            .filter(|i| is_held_out(&c(&format!("question {i}")), 50))
            .count();
        assert!(
            (150..=250).contains(&held),
            "{held} of 10000 held out at 1 in 50"
        );
        assert_eq!(is_held_out(&c("q"), 50), is_held_out(&c("q"), 50));
    }
}
