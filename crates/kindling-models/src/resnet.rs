//! He et al. 2016's CIFAR network ("Deep Residual Learning for Image
//! Recognition", section 4.2), for 1×28×28 images (Fashion-MNIST, used as
//! is: the first convolution takes 1 channel instead of 3).
//!
//! 6n + 2 weighted layers: a 3×3 convolution to 16 channels, three stages
//! of n blocks of two 3×3 convolutions each (16, 32 and 64 filters; the
//! first convolution of stages 2 and 3 has stride 2, so the maps go
//! 28 → 14 → 7), global average pooling and a fully-connected layer to the
//! 10 classes. Every convolution is followed by batch normalization, then
//! ReLU; convolutions have no bias (batch norm's β is the bias).
//!
//! With `residual`, each block adds its input back before the second ReLU:
//! `relu(bn2(conv2(relu(bn1(conv1 x)))) + shortcut(x))`. The shortcut is
//! the paper's **option A**, the one it uses on CIFAR: the identity, and
//! where a stage halves the map and doubles the channels, the input
//! subsampled with stride 2 (`x[:, :, ::2, ::2]`) and zero-padded to the
//! new channel count. Option A adds no parameters, so the plain network
//! (`residual: false`, the same layers without shortcuts) has exactly the
//! residual one's parameters. Weights are initialized as in the paper (He
//! et al. 2015: N(0, 2/fan_in) for the convolutions); the final layer has
//! PyTorch's default init.
//!
//! Parameter names follow the common PyTorch CIFAR ResNets: `conv1`,
//! `bn1`, `layer1.0.conv1`, `layer1.0.bn1`, ..., `layer3.{n-1}.bn2`, `fc`;
//! batch norm's buffers are `*.running_mean`, `*.running_var`.

use kindling_nn::module::{join_name, visit_child};
use kindling_nn::{init, BatchNorm2d, Conv2d, Linear, Module};
use kindling_tensor::{Error, Result, Rng, Tensor};
use serde::{Deserialize, Serialize};

/// Filters of the three stages.
pub const WIDTHS: [usize; 3] = [16, 32, 64];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResNetConfig {
    /// Weighted layers, 6n + 2: 8, 14, 20, 32, 44, 56, 110, ...
    pub depth: usize,
    /// Shortcuts (ResNet) or none (the plain network).
    pub residual: bool,
    pub in_channels: usize,
    pub classes: usize,
}

impl ResNetConfig {
    /// n, the blocks per stage: `depth` must be 6n + 2 with n ≥ 1.
    pub fn blocks_per_stage(&self) -> Result<usize> {
        if self.depth < 8 || !(self.depth - 2).is_multiple_of(6) {
            return Err(Error::msg(format!(
                "`depth` must be 6n + 2 (8, 14, 20, 32, 44, 56, 110, ...), got {}",
                self.depth
            )));
        }
        Ok((self.depth - 2) / 6)
    }
}

/// A 3×3 convolution without bias, He-initialized.
fn conv3x3(inputs: usize, outputs: usize, stride: usize, rng: &mut Rng) -> Conv2d {
    Conv2d {
        weight: init::kaiming_normal(&[outputs, inputs, 3, 3], rng),
        bias: None,
        stride,
        padding: 1,
    }
}

/// Two 3×3 convolutions, each with batch norm, and optionally the shortcut.
pub struct Block {
    pub conv1: Conv2d,
    pub bn1: BatchNorm2d,
    pub conv2: Conv2d,
    pub bn2: BatchNorm2d,
    residual: bool,
    /// Option A where the shape changes: a fixed (not trained) 1×1
    /// convolution of stride 2 whose weight copies input channel i to
    /// output channel i and leaves the rest zero, i.e. subsampling plus
    /// zero channels.
    downsample: Option<Tensor>,
}

impl Block {
    fn new(inputs: usize, outputs: usize, stride: usize, residual: bool, rng: &mut Rng) -> Block {
        let downsample = (stride != 1 || inputs != outputs).then(|| {
            let mut w = vec![0f32; outputs * inputs];
            for i in 0..inputs.min(outputs) {
                w[i * inputs + i] = 1.0;
            }
            Tensor::from_vec(w, &[outputs, inputs, 1, 1]).expect("outputs × inputs values")
        });
        Block {
            conv1: conv3x3(inputs, outputs, stride, rng),
            bn1: BatchNorm2d::new(outputs),
            conv2: conv3x3(outputs, outputs, 1, rng),
            bn2: BatchNorm2d::new(outputs),
            residual,
            downsample,
        }
    }

    /// The shortcut's value for input `x` (option A).
    fn shortcut(&self, x: &Tensor) -> Result<Tensor> {
        match &self.downsample {
            Some(w) => x.conv2d(w, None, self.conv1.stride, 0),
            None => Ok(x.clone()),
        }
    }

    fn batch_norms(&self) -> [&BatchNorm2d; 2] {
        [&self.bn1, &self.bn2]
    }
}

impl Module for Block {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.bn1.forward(&self.conv1.forward(x)?)?.relu()?;
        let h = self.bn2.forward(&self.conv2.forward(&h)?)?;
        let h = if self.residual {
            h.add(&self.shortcut(x)?)?
        } else {
            h
        };
        h.relu()
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        self.conv1.visit_parameters(&join_name(prefix, "conv1"), f);
        self.bn1.visit_parameters(&join_name(prefix, "bn1"), f);
        self.conv2.visit_parameters(&join_name(prefix, "conv2"), f);
        self.bn2.visit_parameters(&join_name(prefix, "bn2"), f);
    }

    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        self.bn1.visit_buffers(&join_name(prefix, "bn1"), f);
        self.bn2.visit_buffers(&join_name(prefix, "bn2"), f);
    }

    fn visit_modules_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        visit_child(&mut self.conv1, &join_name(prefix, "conv1"), f);
        visit_child(&mut self.bn1, &join_name(prefix, "bn1"), f);
        visit_child(&mut self.conv2, &join_name(prefix, "conv2"), f);
        visit_child(&mut self.bn2, &join_name(prefix, "bn2"), f);
    }
}

pub struct ResNet {
    pub config: ResNetConfig,
    pub conv1: Conv2d,
    pub bn1: BatchNorm2d,
    /// `layer1`, `layer2`, `layer3`: n blocks each.
    pub stages: Vec<Vec<Block>>,
    pub fc: Linear,
}

impl ResNet {
    pub fn new(config: ResNetConfig, rng: &mut Rng) -> Result<ResNet> {
        let n = config.blocks_per_stage()?;
        for (name, v) in [
            ("in_channels", config.in_channels),
            ("classes", config.classes),
        ] {
            if v == 0 {
                return Err(Error::msg(format!("`{name}` must be at least 1")));
            }
        }
        let conv1 = conv3x3(config.in_channels, WIDTHS[0], 1, rng);
        let mut stages = Vec::with_capacity(3);
        let mut inputs = WIDTHS[0];
        for (s, &width) in WIDTHS.iter().enumerate() {
            let blocks = (0..n)
                .map(|b| {
                    let stride = if s > 0 && b == 0 { 2 } else { 1 };
                    let block = Block::new(inputs, width, stride, config.residual, rng);
                    inputs = width;
                    block
                })
                .collect();
            stages.push(blocks);
        }
        let fc = Linear::new(WIDTHS[2], config.classes, true, rng);
        Ok(ResNet {
            bn1: BatchNorm2d::new(WIDTHS[0]),
            conv1,
            stages,
            fc,
            config,
        })
    }

    /// Every batch norm layer, input to output.
    pub fn batch_norms(&self) -> Vec<&BatchNorm2d> {
        let mut all = vec![&self.bn1];
        for block in self.stages.iter().flatten() {
            all.extend(block.batch_norms());
        }
        all
    }

    /// Training mode (batch statistics) or evaluation mode (running ones).
    pub fn set_training(&self, training: bool) {
        self.batch_norms()
            .iter()
            .for_each(|bn| bn.set_training(training));
    }

    /// Folds the training forwards' batch statistics into every batch norm
    /// layer's running estimates (once per step; see `BatchNorm2d`).
    pub fn update_running_stats(&self) -> Result<()> {
        for bn in self.batch_norms() {
            bn.update_running_stats()?;
        }
        Ok(())
    }
}

impl Module for ResNet {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = self.config.in_channels;
        let x = match x.shape() {
            [_, ch, _, _] if *ch == c => x.clone(),
            // [B, H, W] or [B, 1, H, W] images of one channel.
            [b, h, w] if c == 1 => x.reshape(&[*b, 1, *h, *w])?,
            s => {
                return Err(Error::shape(
                    "ResNet",
                    format!("input must be [B, {c}, H, W], got {s:?}"),
                ))
            }
        };
        let mut h = self.bn1.forward(&self.conv1.forward(&x)?)?.relu()?;
        for block in self.stages.iter().flatten() {
            h = block.forward(&h)?;
        }
        // Global average pooling: [B, 64, H, W] → [B, 64].
        let pooled = h.mean(&[2, 3], false)?;
        self.fc.forward(&pooled)
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        self.conv1.visit_parameters(&join_name(prefix, "conv1"), f);
        self.bn1.visit_parameters(&join_name(prefix, "bn1"), f);
        for (s, blocks) in self.stages.iter().enumerate() {
            for (b, block) in blocks.iter().enumerate() {
                block.visit_parameters(&join_name(prefix, &format!("layer{}.{b}", s + 1)), f);
            }
        }
        self.fc.visit_parameters(&join_name(prefix, "fc"), f);
    }

    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        self.bn1.visit_buffers(&join_name(prefix, "bn1"), f);
        for (s, blocks) in self.stages.iter().enumerate() {
            for (b, block) in blocks.iter().enumerate() {
                block.visit_buffers(&join_name(prefix, &format!("layer{}.{b}", s + 1)), f);
            }
        }
    }

    fn visit_modules_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        visit_child(&mut self.conv1, &join_name(prefix, "conv1"), f);
        visit_child(&mut self.bn1, &join_name(prefix, "bn1"), f);
        for (s, blocks) in self.stages.iter_mut().enumerate() {
            for (b, block) in blocks.iter_mut().enumerate() {
                visit_child(block, &join_name(prefix, &format!("layer{}.{b}", s + 1)), f);
            }
        }
        visit_child(&mut self.fc, &join_name(prefix, "fc"), f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(depth: usize, residual: bool) -> ResNetConfig {
        ResNetConfig {
            depth,
            residual,
            in_channels: 1,
            classes: 10,
        }
    }

    #[test]
    fn resnet20_has_the_papers_parameter_count_and_names() {
        // He et al. table 6: ResNet-20 has 0.27M parameters (on 3-channel
        // CIFAR; one input channel saves 16·2·9 = 288 of them).
        let mut m = ResNet::new(config(20, true), &mut Rng::new(0)).unwrap();
        assert_eq!(m.num_parameters(), 269_434);
        let plain = ResNet::new(config(20, false), &mut Rng::new(0)).unwrap();
        assert_eq!(
            plain.num_parameters(),
            m.num_parameters(),
            "option A adds none"
        );
        let names: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names[0], "conv1.weight");
        assert_eq!(names[1], "bn1.weight");
        assert!(names.contains(&"layer2.0.conv1.weight".to_string()));
        assert!(names.contains(&"layer3.2.bn2.bias".to_string()));
        assert_eq!(names.last().unwrap(), "fc.bias");
        assert_eq!(kindling_nn::module::leaf_parameter_names(&mut m), names);
        // 1 + 2·9 batch norms, each with its two buffers.
        let buffers = m.named_buffers();
        assert_eq!(buffers.len(), 2 * 19);
        assert_eq!(buffers[0].0, "bn1.running_mean");
        assert_eq!(buffers.last().unwrap().0, "layer3.2.bn2.running_var");
        assert_eq!(m.stages[1][0].conv1.weight.shape(), &[32, 16, 3, 3]);
    }

    #[test]
    fn forward_gives_logits_in_both_modes() {
        let m = ResNet::new(config(8, true), &mut Rng::new(1)).unwrap();
        let x = Tensor::randn(&[3, 1, 28, 28], 0.0, 1.0, &mut Rng::new(2));
        assert_eq!(m.forward(&x).unwrap().shape(), &[3, 10]);
        m.update_running_stats().unwrap();
        assert_ne!(m.bn1.running_mean.to_vec_f32().unwrap(), vec![0.0; 16]);
        m.set_training(false);
        assert!(m.batch_norms().iter().all(|bn| !bn.is_training()));
        assert_eq!(m.forward(&x).unwrap().shape(), &[3, 10]);
        assert!(m.forward(&Tensor::zeros(&[2, 3, 28, 28])).is_err());
    }

    #[test]
    fn the_option_a_shortcut_subsamples_and_pads_with_zero_channels() {
        let m = ResNet::new(config(8, true), &mut Rng::new(1)).unwrap();
        let block = &m.stages[1][0];
        let x = Tensor::randn(&[1, 16, 6, 6], 0.0, 1.0, &mut Rng::new(3));
        let s = block.shortcut(&x).unwrap();
        assert_eq!(s.shape(), &[1, 32, 3, 3]);
        let (xv, sv) = (x.to_vec_f32().unwrap(), s.to_vec_f32().unwrap());
        for c in 0..32 {
            for i in 0..3 {
                for j in 0..3 {
                    let want = if c < 16 {
                        xv[c * 36 + 2 * i * 6 + 2 * j]
                    } else {
                        0.0
                    };
                    assert_eq!(sv[c * 9 + i * 3 + j], want, "channel {c} ({i}, {j})");
                }
            }
        }
        // The plain network: no shortcut at all (same weights, other output).
        let plain = ResNet::new(config(8, false), &mut Rng::new(1)).unwrap();
        let img = Tensor::randn(&[2, 1, 28, 28], 0.0, 1.0, &mut Rng::new(4));
        let (a, b) = (m.forward(&img).unwrap(), plain.forward(&img).unwrap());
        assert_ne!(a.to_vec_f32().unwrap(), b.to_vec_f32().unwrap());
    }

    #[test]
    fn depths_that_are_not_6n_plus_2_are_refused() {
        for depth in [0, 2, 7, 9, 21] {
            let e = ResNet::new(config(depth, true), &mut Rng::new(0))
                .err()
                .unwrap();
            assert!(e.to_string().contains("`depth` must be 6n + 2"), "{e}");
        }
        assert_eq!(config(56, false).blocks_per_stage().unwrap(), 9);
    }
}
