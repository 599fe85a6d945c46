//! Preference pairs: a prompt (a conversation so far) with a chosen and a
//! rejected answer, for reward models and DPO. Read from Anthropic's
//! HH-RLHF transcripts (`{"chosen", "rejected"}`, each a whole dialogue
//! `"\n\nHuman: …\n\nAssistant: …"`) or from JSONL `{"prompt", "chosen",
//! "rejected"}`, and tokenized with the model's chat template so that the
//! answer's tokens are known.
//!
//! HH-RLHF here holds only its test splits, so Kindling splits the pairs
//! itself by a fixed rule on the prompt's text (FNV-1a hash modulo 10: 0 is
//! test, 1 is validation, the rest train). Pairs with the same prompt land
//! in the same split, and the split does not move when files are added.

use crate::sft_data::{fnv1a, read_text_maybe_gz};
use crate::Result;
use kindling_data::tokenizer::Tokenizer;
use kindling_models::chat::{ChatTemplate, Message};
use serde_json::Value;
use std::path::Path;

#[derive(Clone, Debug, PartialEq)]
pub struct PreferencePair {
    /// The conversation before the answer (ends with a user message).
    pub prompt: Vec<Message>,
    pub chosen: String,
    pub rejected: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Validation,
    Test,
}

impl PreferencePair {
    /// The fixed split rule (see the module's notes).
    pub fn split(&self) -> Split {
        let key: String = self
            .prompt
            .iter()
            .map(|m| format!("{}: {}\n", m.role, m.content))
            .collect();
        match fnv1a(&key) % 10 {
            0 => Split::Test,
            1 => Split::Validation,
            _ => Split::Train,
        }
    }
}

/// An HH-RLHF transcript as messages: `\n\nHuman: ` opens a user turn,
/// `\n\nAssistant: ` an assistant turn.
pub fn parse_transcript(text: &str) -> std::result::Result<Vec<Message>, String> {
    const HUMAN: &str = "\n\nHuman:";
    const ASSISTANT: &str = "\n\nAssistant:";
    let mut rest = text;
    if !rest.starts_with(HUMAN) {
        return Err("a transcript must start with \"\\n\\nHuman:\"".into());
    }
    let mut messages = Vec::new();
    while !rest.is_empty() {
        let (role, marker) = if rest.starts_with(HUMAN) {
            ("user", HUMAN)
        } else if rest.starts_with(ASSISTANT) {
            ("assistant", ASSISTANT)
        } else {
            unreachable!("the loop only stops at a marker")
        };
        rest = &rest[marker.len()..];
        let next = [rest.find(HUMAN), rest.find(ASSISTANT)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(rest.len());
        let content = rest[..next].trim();
        messages.push(Message::new(role, content).expect("known role"));
        rest = &rest[next..];
    }
    Ok(messages)
}

/// Outcome of reading pairs: the pairs and how many were skipped and why.
#[derive(Debug, Default)]
pub struct ReadPairs {
    pub pairs: Vec<PreferencePair>,
    /// Chosen and rejected are the same text.
    pub identical: usize,
    /// The two transcripts' prompts differ (HH-RLHF has a few).
    pub prompt_mismatch: usize,
}

/// Reads pairs from a `.jsonl` or `.jsonl.gz` file (either record shape).
pub fn read_pairs(path: &Path) -> Result<ReadPairs> {
    let text = read_text_maybe_gz(path)?;
    parse_pairs(&text, &path.display().to_string())
}

pub fn parse_pairs(text: &str, source: &str) -> Result<ReadPairs> {
    let mut out = ReadPairs::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |e: String| format!("{source}:{}: {e}", i + 1);
        let v: Value =
            serde_json::from_str(line).map_err(|e| at(format!("not a JSON object ({e})")))?;
        let s = |name: &str| -> std::result::Result<&str, String> {
            v.get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| at(format!("field `{name}` is missing or not a string")))
        };
        let (chosen, rejected) = (s("chosen")?, s("rejected")?);
        if chosen == rejected {
            out.identical += 1;
            continue;
        }
        let pair = if v.get("prompt").is_some() {
            PreferencePair {
                prompt: vec![Message::new("user", s("prompt")?).expect("known role")],
                chosen: chosen.to_string(),
                rejected: rejected.to_string(),
            }
        } else {
            let mut c = parse_transcript(chosen).map_err(|e| at(format!("`chosen`: {e}")))?;
            let mut r = parse_transcript(rejected).map_err(|e| at(format!("`rejected`: {e}")))?;
            let (Some(ca), Some(ra)) = (c.pop(), r.pop()) else {
                return Err(at("an empty transcript".into()).into());
            };
            if ca.role != "assistant" || ra.role != "assistant" || c != r || c.is_empty() {
                out.prompt_mismatch += 1;
                continue;
            }
            PreferencePair {
                prompt: c,
                chosen: ca.content,
                rejected: ra.content,
            }
        };
        out.pairs.push(pair);
    }
    Ok(out)
}

/// A pair as ids: the prompt rendered with the assistant's turn opened,
/// then each answer with its end-of-turn marker.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedPair {
    pub prompt: Vec<u32>,
    pub chosen: Vec<u32>,
    pub rejected: Vec<u32>,
}

impl EncodedPair {
    pub fn chosen_ids(&self) -> Vec<u32> {
        [self.prompt.as_slice(), &self.chosen].concat()
    }
    pub fn rejected_ids(&self) -> Vec<u32> {
        [self.prompt.as_slice(), &self.rejected].concat()
    }
}

/// Tokenizes a pair; `None` when either side is longer than `max_len`
/// tokens (such pairs are left out rather than cut, so no answer is scored
/// on a truncated text).
pub fn encode_pair(
    tokenizer: &Tokenizer,
    template: &ChatTemplate,
    pair: &PreferencePair,
    max_len: usize,
) -> Result<Option<EncodedPair>> {
    let prompt_text = template.render(&pair.prompt, true)?;
    let answer = |content: &str| -> Result<Vec<u32>> {
        let mut messages = pair.prompt.clone();
        messages.push(Message::new("assistant", content)?);
        let full = template.render(&messages, false)?;
        let Some(tail) = full.strip_prefix(&prompt_text) else {
            return Err(
                "the chat template does not render the answer as an extension of the prompt".into(),
            );
        };
        Ok(tokenizer.encode(tail)?)
    };
    let e = EncodedPair {
        prompt: tokenizer.encode(&prompt_text)?,
        chosen: answer(&pair.chosen)?,
        rejected: answer(&pair.rejected)?,
    };
    let longest = e.prompt.len() + e.chosen.len().max(e.rejected.len());
    Ok((longest <= max_len && !e.chosen.is_empty() && !e.rejected.is_empty()).then_some(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hh_transcripts_become_a_prompt_and_two_answers() {
        let line = r#"{"chosen": "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: Name a fruit.\n\nAssistant: An apple.", "rejected": "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: Name a fruit.\n\nAssistant: No."}
{"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: a\n\nAssistant: b"}
{"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: c\n\nAssistant: d"}
{"prompt": "2+2?", "chosen": "4", "rejected": "5"}"#;
        let r = parse_pairs(line, "hh.jsonl").unwrap();
        assert_eq!((r.pairs.len(), r.identical, r.prompt_mismatch), (2, 1, 1));
        let p = &r.pairs[0];
        let roles: Vec<&str> = p.prompt.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["user", "assistant", "user"]);
        assert_eq!(p.prompt[2].content, "Name a fruit.");
        assert_eq!(
            (p.chosen.as_str(), p.rejected.as_str()),
            ("An apple.", "No.")
        );
        assert_eq!(r.pairs[1].prompt[0].content, "2+2?");
        let e = parse_pairs("{\"chosen\": \"x\"}", "p.jsonl")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "p.jsonl:1: field `rejected` is missing or not a string");
        let e = parse_pairs("{\"chosen\": \"x\", \"rejected\": \"y\"}", "p.jsonl")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`chosen`: a transcript must start with"), "{e}");
    }

    #[test]
    fn the_split_rule_is_fixed_by_the_prompt_and_near_its_rates() {
        let pair = |i: usize| PreferencePair {
            prompt: vec![Message::new("user", format!("question {i}")).unwrap()],
            chosen: "a".into(),
            rejected: "b".into(),
        };
        let mut counts = [0usize; 3];
        for i in 0..10_000 {
            counts[match pair(i).split() {
                Split::Train => 0,
                Split::Validation => 1,
                Split::Test => 2,
            }] += 1;
        }
        assert!((7700..8300).contains(&counts[0]), "{counts:?}");
        assert!(
            (800..1200).contains(&counts[1]) && (800..1200).contains(&counts[2]),
            "{counts:?}"
        );
        let same_prompt = PreferencePair {
            chosen: "x".into(),
            ..pair(5)
        };
        assert_eq!(same_prompt.split(), pair(5).split());
    }
}
