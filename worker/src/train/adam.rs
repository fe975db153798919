//! Adam (Kingma & Ba) with its state in our hands, so that a checkpoint can hold it and a
//! resumed run continues exactly. libtorch's optimizer keeps its moments out of reach of
//! tch, hence this small copy of PyTorch's single-tensor Adam (betas 0.9, 0.999, eps 1e-8,
//! no weight decay), the same arithmetic `torch.optim.Adam` runs on CPU.

use tch::{nn, Tensor};

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

/// The optimizer: the trainable variables in name order, their moments, the step count.
pub struct Adam {
    lr: f64,
    /// A fused group's learning rates ([`Adam::set_group_lrs`]), as one float64 column per
    /// variable on its device: row r holds the rate of the trial whose share holds row r.
    group_lrs: Option<Vec<Tensor>>,
    step: i64,
    names: Vec<String>,
    params: Vec<Tensor>,
    exp_avg: Vec<Tensor>,
    /// The second moment divided by (1 - beta2): its update is then `u = beta2 u + g²`, one
    /// in-place `addcmul_` (tch's has no scale argument), with no temporary tensor.
    exp_avg_sq_scaled: Vec<Tensor>,
}

impl Adam {
    pub fn new(vs: &nn::VarStore, lr: f64) -> Self {
        let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let (names, params): (Vec<_>, Vec<_>) = named.into_iter().unzip();
        let zeros = |p: &Vec<Tensor>| p.iter().map(Tensor::zeros_like).collect();
        Self { lr, group_lrs: None, step: 0, exp_avg: zeros(&params), exp_avg_sq_scaled: zeros(&params), names, params }
    }

    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.zero_grad();
        }
    }

    /// One update from the gradients, in place: the arithmetic of PyTorch's single-tensor
    /// Adam with one temporary tensor per parameter.
    pub fn step(&mut self) {
        let _guard = tch::no_grad_guard();
        self.step += 1;
        let step_size = self.lr / (1.0 - BETA1.powi(self.step as i32));
        let bias2 = 1.0 - BETA2.powi(self.step as i32);
        // sqrt(v / bias2) = sqrt(u) * sqrt((1 - beta2) / bias2).
        let root_scale = ((1.0 - BETA2) / bias2).sqrt();
        let bias1 = 1.0 - BETA1.powi(self.step as i32);
        for (i, ((p, m), u)) in
            self.params.iter_mut().zip(&mut self.exp_avg).zip(&mut self.exp_avg_sq_scaled).enumerate()
        {
            let grad = p.grad();
            if !grad.defined() {
                continue;
            }
            let _ = m.lerp_(&grad, 1.0 - BETA1);
            let _ = u.g_mul_scalar_(BETA2);
            let _ = u.addcmul_(&grad, &grad);
            // p -= step_size m / (sqrt(v / bias2) + eps), as p += m / denom.
            let mut denom = u.sqrt();
            let _ = denom.g_mul_scalar_(root_scale);
            let _ = denom.g_add_scalar_(EPS);
            match &self.group_lrs {
                None => {
                    let _ = denom.g_div_scalar_(-step_size);
                }
                Some(columns) => {
                    // Each trial's rows divided by its own step size: lr / bias1 in float64,
                    // then rounded to float32, the very number its scalar step size gives alone.
                    let sizes = (&columns[i] / -bias1).to_kind(p.kind());
                    let _ = denom.g_div_(&sizes);
                }
            }
            let _ = p.addcdiv_(m, &denom);
        }
    }

    /// Steps a fused group's trials each at its own learning rate from now on (one per
    /// trial, in group order); every variable's first dimension must split evenly among them.
    pub fn set_group_lrs(&mut self, lrs: &[f64]) {
        let _guard = tch::no_grad_guard();
        let columns = self
            .params
            .iter()
            .map(|p| {
                let share = p.size()[0] / lrs.len() as i64;
                let mut shape = vec![p.size()[0]];
                shape.extend(std::iter::repeat_n(1, p.dim() - 1));
                Tensor::from_slice(lrs)
                    .to_device(p.device())
                    .repeat_interleave_self_int(share, 0, None)
                    .view(shape.as_slice())
            })
            .collect();
        self.group_lrs = Some(columns);
    }

    /// Sets the learning rate of the steps to come (a schedule's, between epochs).
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// Steps taken so far.
    pub fn steps(&self) -> i64 {
        self.step
    }

    /// The moments, named for a checkpoint.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.names.len());
        for ((name, m), u) in self.names.iter().zip(&self.exp_avg).zip(&self.exp_avg_sq_scaled) {
            out.push((format!("adam.exp_avg.{name}"), m.shallow_clone()));
            out.push((format!("adam.exp_avg_sq_scaled.{name}"), u.shallow_clone()));
        }
        out
    }

    /// Member `member`'s share of the moments of a fused group of `groups` trials, named as
    /// its own [`Adam::state`] would name them alone (views, not copies).
    pub fn member_state(&self, groups: i64, member: i64) -> Vec<(String, Tensor)> {
        self.state()
            .into_iter()
            .map(|(name, t)| {
                let share = t.size()[0] / groups;
                (name, t.narrow(0, member * share, share))
            })
            .collect()
    }

    /// Restores moments and step count saved by [`Adam::state`]; names must match.
    pub fn restore(&mut self, step: i64, lookup: &dyn Fn(&str) -> Option<Tensor>) -> Result<(), String> {
        let _guard = tch::no_grad_guard();
        for ((name, m), u) in self.names.iter().zip(&mut self.exp_avg).zip(&mut self.exp_avg_sq_scaled) {
            for (kind, target) in [("exp_avg", m), ("exp_avg_sq_scaled", u)] {
                let key = format!("adam.{kind}.{name}");
                let saved = lookup(&key).ok_or_else(|| format!("checkpoint lacks {key}"))?;
                if saved.size() != target.size() {
                    return Err(format!("{key} has shape {:?}, the model needs {:?}", saved.size(), target.size()));
                }
                target.copy_(&saved.to_device(target.device()));
            }
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tch::nn::{Module, OptimizerConfig};
    use tch::{nn, Device, Kind, Tensor};

    use super::Adam;

    /// Values that depend on nothing but `shape`: libtorch's shared generator is drawn from
    /// by the tests that run beside this one, so neither run may use it.
    fn fixed(shape: &[i64]) -> Tensor {
        let n: i64 = shape.iter().product();
        Tensor::arange(n, (Kind::Float, Device::Cpu)).sin().reshape(shape)
    }

    /// Trains the same tiny model with this Adam and with libtorch's own (C++) Adam.
    #[test]
    fn matches_libtorchs_adam() {
        let run = |ours: bool| {
            let vs = nn::VarStore::new(Device::Cpu);
            // Constant initial weights, overwritten below: a random init would draw from
            // libtorch's process-wide generator outside `models`' lock and shift the initial
            // weights of a network another test builds at the same time.
            let zeros =
                nn::LinearConfig { ws_init: nn::Init::Const(0.0), bs_init: Some(nn::Init::Const(0.0)), bias: true };
            let mut layer = nn::linear(vs.root() / "l", 6, 3, zeros);
            tch::no_grad(|| {
                layer.ws.copy_(&fixed(&[3, 6]));
                if let Some(bs) = layer.bs.as_mut() {
                    bs.copy_(&fixed(&[3]));
                }
            });
            let x = fixed(&[8, 6]);
            let mut mine = Adam::new(&vs, 1e-2);
            let mut theirs = nn::Adam::default().build(&vs, 1e-2).unwrap();
            for _ in 0..20 {
                let loss = layer.forward(&x).square().mean(None);
                if ours {
                    mine.zero_grad();
                    loss.backward();
                    mine.step();
                } else {
                    theirs.backward_step(&loss);
                }
            }
            layer.ws.copy()
        };
        let (a, b) = (run(true), run(false));
        let worst = (&a - &b).abs().max().double_value(&[]);
        assert!(worst < 1e-6, "largest weight difference {worst}");
        assert!(a.abs().sum(None).double_value(&[]) > 0.0);
    }
}
