//! Learning-rate schedules, as a function of the step number.

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LrSchedule {
    Constant {
        lr: f32,
    },
    /// `lr * gamma^(step / every)`.
    Step {
        lr: f32,
        every: usize,
        gamma: f32,
    },
    /// Linear warmup to `lr` over `warmup` steps, then a half cosine down to
    /// `min_lr` at `total` steps, and `min_lr` after (nanoGPT's schedule).
    WarmupCosine {
        lr: f32,
        min_lr: f32,
        warmup: usize,
        total: usize,
    },
    /// Linear warmup to `lr` over `warmup` steps, constant, then a linear
    /// cooldown to `min_lr` over the last `cooldown` of `total` steps
    /// (warmup-stable-decay, the trapezoid of modded-nanogpt and MiniCPM).
    WarmupStableDecay {
        lr: f32,
        min_lr: f32,
        warmup: usize,
        cooldown: usize,
        total: usize,
    },
}

impl LrSchedule {
    pub fn lr_at(&self, step: usize) -> f32 {
        match *self {
            LrSchedule::Constant { lr } => lr,
            LrSchedule::Step { lr, every, gamma } => lr * gamma.powi((step / every.max(1)) as i32),
            LrSchedule::WarmupCosine {
                lr,
                min_lr,
                warmup,
                total,
            } => {
                if step < warmup {
                    return lr * (step + 1) as f32 / (warmup + 1) as f32;
                }
                if step >= total {
                    return min_lr;
                }
                let progress = (step - warmup) as f32 / (total - warmup).max(1) as f32;
                let coeff = 0.5 * (1.0 + (std::f32::consts::PI * progress).cos());
                min_lr + coeff * (lr - min_lr)
            }
            LrSchedule::WarmupStableDecay {
                lr,
                min_lr,
                warmup,
                cooldown,
                total,
            } => {
                if step < warmup {
                    return lr * (step + 1) as f32 / (warmup + 1) as f32;
                }
                if step >= total {
                    return min_lr;
                }
                let left = total - step;
                if left >= cooldown {
                    return lr;
                }
                min_lr + (lr - min_lr) * left as f32 / cooldown.max(1) as f32
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_cosine_rises_then_falls_to_min() {
        let s = LrSchedule::WarmupCosine {
            lr: 1.0,
            min_lr: 0.1,
            warmup: 10,
            total: 110,
        };
        assert!(s.lr_at(0) < s.lr_at(5) && s.lr_at(5) < s.lr_at(9));
        assert!((s.lr_at(10) - 1.0).abs() < 1e-6);
        assert!((s.lr_at(60) - 0.55).abs() < 1e-5, "halfway is the midpoint");
        assert!((s.lr_at(110) - 0.1).abs() < 1e-6 && (s.lr_at(500) - 0.1).abs() < 1e-6);
    }

    #[test]
    fn warmup_stable_decay_holds_then_falls_linearly_to_min() {
        let s = LrSchedule::WarmupStableDecay {
            lr: 1.0,
            min_lr: 0.0,
            warmup: 10,
            cooldown: 40,
            total: 110,
        };
        assert!(s.lr_at(0) < s.lr_at(9) && s.lr_at(9) < 1.0);
        assert_eq!(s.lr_at(10), 1.0);
        assert_eq!(
            s.lr_at(70),
            1.0,
            "the cooldown starts 40 steps before the end"
        );
        assert!(
            (s.lr_at(90) - 0.5).abs() < 1e-6,
            "halfway down the cooldown"
        );
        assert!(s.lr_at(109) > 0.0 && s.lr_at(110) == 0.0 && s.lr_at(500) == 0.0);
    }

    #[test]
    fn step_schedule_decays_every_n_steps() {
        let s = LrSchedule::Step {
            lr: 1.0,
            every: 10,
            gamma: 0.5,
        };
        assert_eq!(s.lr_at(9), 1.0);
        assert_eq!(s.lr_at(10), 0.5);
        assert_eq!(s.lr_at(25), 0.25);
        assert_eq!(LrSchedule::Constant { lr: 0.3 }.lr_at(1000), 0.3);
    }
}
