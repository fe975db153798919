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
    step: i64,
    names: Vec<String>,
    params: Vec<Tensor>,
    exp_avg: Vec<Tensor>,
    exp_avg_sq: Vec<Tensor>,
}

impl Adam {
    pub fn new(vs: &nn::VarStore, lr: f64) -> Self {
        let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let (names, params): (Vec<_>, Vec<_>) = named.into_iter().unzip();
        let zeros = |p: &Vec<Tensor>| p.iter().map(Tensor::zeros_like).collect();
        Self { lr, step: 0, exp_avg: zeros(&params), exp_avg_sq: zeros(&params), names, params }
    }

    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.zero_grad();
        }
    }

    /// One update from the gradients in place.
    pub fn step(&mut self) {
        let _guard = tch::no_grad_guard();
        self.step += 1;
        let bias1 = 1.0 - BETA1.powi(self.step as i32);
        let bias2_sqrt = (1.0 - BETA2.powi(self.step as i32)).sqrt();
        for ((p, m), v) in self.params.iter_mut().zip(&mut self.exp_avg).zip(&mut self.exp_avg_sq) {
            let grad = p.grad();
            if !grad.defined() {
                continue;
            }
            *m *= BETA1;
            *m += &grad * (1.0 - BETA1);
            *v *= BETA2;
            let _ = v.addcmul_(&(&grad * (1.0 - BETA2)), &grad);
            let denom = v.sqrt() / bias2_sqrt + EPS;
            let _ = p.addcdiv_(&(&*m * (-self.lr / bias1)), &denom);
        }
    }

    /// Steps taken so far.
    pub fn steps(&self) -> i64 {
        self.step
    }

    /// The moments, named for a checkpoint.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.names.len());
        for ((name, m), v) in self.names.iter().zip(&self.exp_avg).zip(&self.exp_avg_sq) {
            out.push((format!("adam.exp_avg.{name}"), m.shallow_clone()));
            out.push((format!("adam.exp_avg_sq.{name}"), v.shallow_clone()));
        }
        out
    }

    /// Restores moments and step count saved by [`Adam::state`]; names must match.
    pub fn restore(&mut self, step: i64, lookup: &dyn Fn(&str) -> Option<Tensor>) -> Result<(), String> {
        let _guard = tch::no_grad_guard();
        for ((name, m), v) in self.names.iter().zip(&mut self.exp_avg).zip(&mut self.exp_avg_sq) {
            for (kind, target) in [("exp_avg", m), ("exp_avg_sq", v)] {
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
