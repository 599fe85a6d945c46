//! Chat prompts: a conversation of (role, content) messages rendered by the
//! model's own chat template, a Jinja program shipped with the tokenizer
//! (`tokenizer.chat_template` in GGUF, `chat_template` in
//! `tokenizer_config.json`), exactly as `transformers`'
//! `apply_chat_template` renders it. A chat model sees one long text: the
//! whole history, re-fed every turn, with the assistant's turn opened at the
//! end for it to complete.

use kindling_tensor::{Error, Result};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

pub const ROLES: &[&str] = &["system", "user", "assistant"];

impl Message {
    /// A message; the role must be one of [`ROLES`].
    pub fn new(role: &str, content: impl Into<String>) -> Result<Message> {
        if !ROLES.contains(&role) {
            return Err(Error::msg(format!(
                "unknown chat role `{role}` (expected one of: {})",
                ROLES.join(", ")
            )));
        }
        Ok(Message {
            role: role.to_string(),
            content: content.into(),
        })
    }
}

/// ChatML (OpenAI's format, used by SmolLM2 and Qwen), for tokenizers that
/// ship no template.
pub const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

pub struct ChatTemplate {
    source: String,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<ChatTemplate> {
        let t = ChatTemplate {
            source: source.to_string(),
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
        };
        // Parse once now so a broken template is reported when loaded.
        t.env()?;
        Ok(t)
    }

    fn env(&self) -> Result<minijinja::Environment<'_>> {
        let mut env = minijinja::Environment::new();
        // Python string methods (`.strip()`, `.startswith()`) that Hugging
        // Face templates call.
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |m: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    m,
                ))
            },
        );
        env.add_template("chat", &self.source)
            .map_err(|e| Error::msg(format!("chat template: {e}")))?;
        Ok(env)
    }

    /// The prompt text for `messages`; with `add_generation_prompt`, ends
    /// with the opening of the assistant's turn.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let env = self.env()?;
        let tmpl = env.get_template("chat").expect("added above");
        tmpl.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token,
            eos_token => self.eos_token,
        })
        .map_err(|e| Error::msg(format!("chat template: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_renders_as_transformers_does() {
        let t = ChatTemplate::new(CHATML, "", "<|im_end|>").unwrap();
        let m = [
            Message::new("system", "Be brief.").unwrap(),
            Message::new("user", "What is 2+2?").unwrap(),
        ];
        assert_eq!(
            t.render(&m, true).unwrap(),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
        );
        let e = Message::new("robot", "hi").unwrap_err().to_string();
        assert!(e.contains("unknown chat role `robot`"), "{e}");
    }

    #[test]
    fn python_string_methods_and_raise_exception_work() {
        let t = ChatTemplate::new(
            "{% if messages[0]['role'] != 'user' %}{{ raise_exception('first must be user') }}{% endif %}{{ messages[0]['content'].strip() }}",
            "",
            "",
        )
        .unwrap();
        assert_eq!(
            t.render(&[Message::new("user", "  hi ").unwrap()], false)
                .unwrap(),
            "hi"
        );
        let e = t
            .render(&[Message::new("system", "x").unwrap()], false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("first must be user"), "{e}");
    }
}
