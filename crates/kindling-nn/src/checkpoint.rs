//! Model checkpoints: a module's named parameters in one safetensors file,
//! with a JSON config in the header metadata, written atomically.

use crate::Module;
use kindling_tensor::{safetensors_io, Error, Result, Tensor};
use std::collections::HashMap;
use std::path::Path;

pub const CONFIG_KEY: &str = "kindling.config";

/// Saves the parameters and buffers of `module` (plus `extra` tensors,
/// e.g. optimizer state) with `config` as JSON metadata.
pub fn save(
    path: &Path,
    module: &dyn Module,
    config: &serde_json::Value,
    extra: &[(String, Tensor)],
) -> Result<()> {
    let mut tensors = module.named_parameters();
    tensors.extend(module.named_buffers());
    tensors.extend(extra.iter().cloned());
    let mut meta = HashMap::new();
    meta.insert(CONFIG_KEY.to_string(), config.to_string());
    safetensors_io::save(path, &tensors, &meta)
}

/// Saves named tensors (e.g. only a model's trainable parameters, plus
/// optimizer state) with `config` as JSON metadata.
pub fn save_tensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    config: &serde_json::Value,
) -> Result<()> {
    let mut meta = HashMap::new();
    meta.insert(CONFIG_KEY.to_string(), config.to_string());
    safetensors_io::save(path, tensors, &meta)
}

/// Everything in a checkpoint: the tensors and the stored config.
pub struct Checkpoint {
    pub tensors: HashMap<String, Tensor>,
    pub config: serde_json::Value,
}

pub fn read(path: &Path) -> Result<Checkpoint> {
    let (tensors, meta) = safetensors_io::load(path).map_err(|e| match e {
        Error::NotSafeTensors { path, why } => {
            Error::msg(format!("{path} is not a Kindling checkpoint ({why})"))
        }
        e => e,
    })?;
    let config = match meta.get(CONFIG_KEY) {
        Some(s) => serde_json::from_str(s).map_err(|e| {
            Error::msg(format!(
                "{}: metadata `{CONFIG_KEY}` is not valid JSON: {e}",
                path.display()
            ))
        })?,
        None => serde_json::Value::Null,
    };
    Ok(Checkpoint { tensors, config })
}

impl Checkpoint {
    /// Checks the `model` entry of the stored config, so loading a GPT
    /// checkpoint as a LeNet-5 (or any other mix-up) names both.
    pub fn expect_model(&self, path: &Path, model: &str, what: &str) -> Result<()> {
        let found = self.config.get("model").and_then(serde_json::Value::as_str);
        if found != Some(model) {
            return Err(Error::msg(format!(
                "{}: not a {what} checkpoint (model is {})",
                path.display(),
                found.map_or("not recorded".to_string(), |m| format!("`{m}`"))
            )));
        }
        Ok(())
    }

    /// Copies the stored values into `module`'s parameters. Every parameter
    /// must be present with its exact shape; the error names the first that
    /// is missing or differs.
    pub fn load_into(&self, module: &dyn Module, path: &Path) -> Result<()> {
        self.load_selected(module, path, &|_| true)
    }

    /// [`Checkpoint::load_into`] for the parameters that are trainable
    /// (requires_grad) only: a checkpoint that left a frozen base out.
    pub fn load_trainable_into(&self, module: &dyn Module, path: &Path) -> Result<()> {
        self.load_selected(module, path, &|p| p.requires_grad())
    }

    fn load_selected(
        &self,
        module: &dyn Module,
        path: &Path,
        select: &dyn Fn(&Tensor) -> bool,
    ) -> Result<()> {
        // Buffers (running statistics) are always saved, so always loaded.
        for (name, b) in module.named_buffers() {
            b.assign(&self.stored(&name, &b, path)?)?;
        }
        module.map_params(&mut |name, p| {
            if !select(p) {
                return Ok(None);
            }
            Ok(Some(self.stored(name, p, path)?))
        })
    }

    /// The stored tensor `name`, checked to have `like`'s shape.
    fn stored(&self, name: &str, like: &Tensor, path: &Path) -> Result<Tensor> {
        let t = self.tensors.get(name).ok_or_else(|| {
            Error::msg(format!(
                "{}: checkpoint has no tensor `{name}`",
                path.display()
            ))
        })?;
        if t.shape() != like.shape() {
            return Err(Error::msg(format!(
                "{}: tensor `{name}` has shape {:?}, the model expects {:?}",
                path.display(),
                t.shape(),
                like.shape()
            )));
        }
        Ok(t.clone())
    }
}
