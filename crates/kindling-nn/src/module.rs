use crate::Linear;
use kindling_tensor::{Error, Result, Tensor};

/// A layer or model: a forward function and its parameters, each with a
/// dotted name (`0.weight`, `h.0.attn.c_attn.weight`) that checkpoints and
/// optimizer state are keyed by.
///
/// A model is a tree of modules. Each module names its own children and
/// nothing deeper (`Block` says `attn`, `Attention` says `c_attn`, `Linear`
/// says `weight`), so a parameter's name comes from the structure alone.
/// Two walks follow the tree: `visit_parameters` (shared, for reading and
/// for everything a tensor handle can do in place: assigning values,
/// freezing) and `visit_modules_mut` (exclusive, for replacing layers, e.g.
/// wrapping a `Linear` for LoRA). `leaf_parameter_names` checks that they
/// agree.
pub trait Module: Send + Sync {
    fn forward(&self, x: &Tensor) -> Result<Tensor>;

    /// Calls `f` with every parameter and its full name under `prefix`.
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor));

    /// Calls `f` with every buffer and its full name under `prefix`: state
    /// that is part of the model but not trained by gradient (batch norm's
    /// running statistics). Checkpoints save and restore buffers with the
    /// parameters; optimizers never see them. None by default; a composite
    /// whose children have buffers visits them here.
    fn visit_buffers(&self, _prefix: &str, _f: &mut dyn FnMut(String, &Tensor)) {}

    /// Calls `f` with every submodule below this one (not itself), parents
    /// before their children, each with its full name under `prefix`. A
    /// leaf layer has none (the default); a composite calls
    /// [`visit_child`] for each child.
    fn visit_modules_mut(&mut self, _prefix: &str, _f: &mut dyn FnMut(&str, &mut dyn Module)) {}

    /// This module as a `Linear`, if it is one: what `map_linears` finds.
    fn as_linear_mut(&mut self) -> Option<&mut Linear> {
        None
    }

    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.visit_parameters("", &mut |name, t| out.push((name, t.clone())));
        out
    }

    fn named_buffers(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.visit_buffers("", &mut |name, t| out.push((name, t.clone())));
        out
    }

    fn parameters(&self) -> Vec<Tensor> {
        self.named_parameters()
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    /// The parameters that require a gradient (not frozen), with their names.
    fn named_trainable_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = self.named_parameters();
        out.retain(|(_, t)| t.requires_grad());
        out
    }

    fn trainable_parameters(&self) -> Vec<Tensor> {
        let mut out = self.parameters();
        out.retain(Tensor::requires_grad);
        out
    }

    fn num_parameters(&self) -> usize {
        self.parameters().iter().map(|t| t.numel()).sum()
    }

    fn zero_grad(&self) {
        self.parameters().iter().for_each(|p| p.zero_grad());
    }

    /// Freezes (`trainable = false`) or unfreezes every parameter whose
    /// name `select` accepts; returns how many it changed the setting of.
    /// A frozen parameter records no graph, gets no gradient and costs no
    /// backward work; build the optimizer from `named_trainable_parameters`
    /// afterwards.
    fn set_trainable(&self, select: &dyn Fn(&str) -> bool, trainable: bool) -> usize {
        let mut selected = 0;
        self.visit_parameters("", &mut |name, t| {
            if select(&name) {
                // Parameters are leaves: only an op's result refuses.
                if t.set_requires_grad(trainable).is_ok() {
                    selected += 1;
                }
            }
        });
        selected
    }

    /// Replaces parameter values in place: `f(name, current)` returns the
    /// new value or `None` to keep it. The handles stay the same (the
    /// optimizer keeps working on them); shapes must match.
    fn map_params(&self, f: &mut dyn FnMut(&str, &Tensor) -> Result<Option<Tensor>>) -> Result<()> {
        for (name, p) in self.named_parameters() {
            let Some(t) = f(&name, &p)? else { continue };
            if t.shape() != p.shape() {
                return Err(Error::msg(format!(
                    "parameter `{name}`: new value has shape {:?}, the model expects {:?}",
                    t.shape(),
                    p.shape()
                )));
            }
            p.assign(&t)?;
        }
        Ok(())
    }

    /// Calls `f` with every submodule and its full name, mutably.
    fn map_modules(&mut self, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        self.visit_modules_mut("", f);
    }

    /// Calls `f` with every `Linear` layer and its full name, mutably: the
    /// seam for adapters (LoRA) that change what a linear layer computes.
    fn map_linears(&mut self, f: &mut dyn FnMut(&str, &mut Linear)) {
        self.visit_modules_mut("", &mut |name, m| {
            if let Some(l) = m.as_linear_mut() {
                f(name, l)
            }
        });
    }
}

/// One step of `visit_modules_mut` in a composite: `f` on the child, then
/// the walk below it.
pub fn visit_child(child: &mut dyn Module, name: &str, f: &mut dyn FnMut(&str, &mut dyn Module)) {
    f(name, child);
    child.visit_modules_mut(name, f);
}

/// The parameter names the leaves of the mutable walk report, in walk
/// order. For a well-formed module this is exactly `named_parameters()`'s
/// names (each model's tests assert it), so the two walks cannot drift.
pub fn leaf_parameter_names(module: &mut dyn Module) -> Vec<String> {
    let mut names = Vec::new();
    module.visit_modules_mut("", &mut |name, m| {
        let mut has_children = false;
        m.visit_modules_mut(name, &mut |_, _| has_children = true);
        if !has_children {
            m.visit_parameters(name, &mut |n, _| names.push(n));
        }
    });
    names
}

/// `prefix.name`, or `name` at the top level.
pub fn join_name(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Activation, ActivationKind, Sequential};
    use kindling_tensor::Rng;

    fn mlp() -> Sequential {
        let mut rng = Rng::new(0);
        Sequential::new()
            .push(Linear::new(3, 4, true, &mut rng))
            .push(Activation(ActivationKind::Relu))
            .push(Linear::new(4, 2, false, &mut rng))
    }

    #[test]
    fn the_mutable_walk_names_modules_as_the_parameter_walk_does() {
        let mut m = mlp();
        let names: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["0.weight", "0.bias", "2.weight"]);
        assert_eq!(leaf_parameter_names(&mut m), names);
        let mut linears = Vec::new();
        m.map_linears(&mut |name, l| linears.push((name.to_string(), l.out_features())));
        assert_eq!(linears, [("0".to_string(), 4), ("2".to_string(), 2)]);
    }

    #[test]
    fn map_linears_replaces_a_layer_in_place() {
        let mut m = mlp();
        m.map_linears(&mut |name, l| {
            if name == "2" {
                l.bias = Some(Tensor::ones(&[2]).requires_grad_(true));
            }
        });
        assert!(m.named_parameters().iter().any(|(n, _)| n == "2.bias"));
    }

    #[test]
    fn frozen_parameters_get_no_gradient_and_are_not_trainable() {
        let m = mlp();
        assert_eq!(m.set_trainable(&|n| n.starts_with("0."), false), 2);
        let trainable: Vec<String> = m
            .named_trainable_parameters()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(trainable, ["2.weight"]);
        let x = Tensor::ones(&[5, 3]);
        m.forward(&x)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let named = m.named_parameters();
        assert!(named[0].1.grad().is_none() && named[1].1.grad().is_none());
        assert!(named[2].1.grad().is_some());
        assert_eq!(m.set_trainable(&|_| true, true), 3);
        assert_eq!(m.trainable_parameters().len(), 3);
    }

    #[test]
    fn map_params_assigns_new_values_and_checks_shapes() {
        let m = mlp();
        let before = m.parameters()[0].clone();
        m.map_params(&mut |name, p| Ok((name == "0.weight").then(|| p.zeros_like())))
            .unwrap();
        assert_eq!(
            before.to_vec_f32().unwrap(),
            vec![0.0; 12],
            "same handle, new values"
        );
        let err = m
            .map_params(&mut |_, _| Ok(Some(Tensor::zeros(&[1]))))
            .unwrap_err();
        assert!(err.to_string().contains("0.weight"), "{err}");
    }
}
