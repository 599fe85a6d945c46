use kindling_tensor::{Result, Tensor};

/// A layer or model: a forward function and its parameters, each with a
/// dotted name (`0.weight`, `hidden.bias`) that checkpoints are keyed by.
pub trait Module: Send + Sync {
    fn forward(&self, x: &Tensor) -> Result<Tensor>;

    /// Calls `f` with every parameter and its full name under `prefix`.
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor));

    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.visit_parameters("", &mut |name, t| out.push((name, t.clone())));
        out
    }

    fn parameters(&self) -> Vec<Tensor> {
        self.named_parameters()
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    fn num_parameters(&self) -> usize {
        self.parameters().iter().map(|t| t.numel()).sum()
    }

    fn zero_grad(&self) {
        self.parameters().iter().for_each(|p| p.zero_grad());
    }
}

/// `prefix.name`, or `name` at the top level.
pub fn join_name(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}
