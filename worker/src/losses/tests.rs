//! Hand-computed values of every loss on the cases a user would check first (empty target,
//! full target, perfect and worst prediction), ALL's values and slopes on both sides of
//! gamma, the refusal of bad inputs and bad parameters, and gradients against finite
//! differences.

use tch::{Kind, Tensor};
use toml::Table;

use super::*;

fn config(text: &str) -> LossConfig {
    let table: Table = text.parse().expect("test config is valid TOML");
    LossConfig::from_table(&table, "loss").expect("test config is valid")
}

fn filled(value: f64) -> Tensor {
    Tensor::full([1, 1, 2, 2], value, (Kind::Double, tch::Device::Cpu))
}

fn loss(config_text: &str, pred: &Tensor, target: &Tensor) -> f64 {
    Loss::new(config(config_text)).compute(pred, target).expect("valid inputs").double_value(&[])
}

fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!((actual - expected).abs() <= 1e-9 * expected.abs().max(1.0), "{what}: got {actual}, expected {expected}");
}

#[test]
fn region_losses_are_zero_for_perfect_predictions_including_empty_targets() {
    for kind in ["dice", "jaccard", "tversky", "focal_tversky"] {
        let text = format!("kind = \"{kind}\"");
        assert_close(loss(&text, &filled(1.0), &filled(1.0)), 0.0, &format!("{kind}, full target"));
        assert_close(loss(&text, &filled(0.0), &filled(0.0)), 0.0, &format!("{kind}, empty target"));
    }
}

#[test]
fn region_losses_of_the_worst_prediction_follow_their_formulas() {
    // 4 positive pixels, all predicted 0: TP = 0, FN = 4, FP = 0, smoothing 1.
    let (miss_all, ones) = (filled(0.0), filled(1.0));
    assert_close(loss("kind = \"dice\"", &miss_all, &ones), 1.0 - 1.0 / 5.0, "dice");
    assert_close(loss("kind = \"jaccard\"", &miss_all, &ones), 1.0 - 1.0 / 5.0, "jaccard");
    assert_close(loss("kind = \"tversky\"", &miss_all, &ones), 1.0 - 1.0 / (0.7 * 4.0 + 1.0), "tversky");
    let ftl = (1.0_f64 / (0.7 * 4.0 + 1.0)).mul_add(-1.0, 1.0).powf(0.75);
    assert_close(loss("kind = \"focal_tversky\"", &miss_all, &ones), ftl, "focal tversky");
    // Empty target, everything predicted: FP = 4, weighed 1 - alpha = 0.3 by Tversky.
    assert_close(loss("kind = \"dice\"", &ones, &miss_all), 1.0 - 1.0 / 5.0, "dice, empty target");
    assert_close(loss("kind = \"tversky\"", &ones, &miss_all), 1.0 - 1.0 / (0.3 * 4.0 + 1.0), "tversky, empty target");
}

#[test]
fn focal_and_combo_use_clipped_probabilities() {
    let ln_clip = (1e-7_f64).ln();
    // Worst prediction on an all-positive target: p_t = 1e-7, alpha_t = 0.25.
    let focal = -0.25 * (1.0 - 1e-7_f64).powi(2) * ln_clip;
    assert_close(loss("kind = \"focal\"", &filled(0.0), &filled(1.0)), focal, "focal, worst");
    // Perfect: p_t = 1 - 1e-7, (1 - p_t)^2 = 1e-14: practically zero.
    assert!(loss("kind = \"focal\"", &filled(1.0), &filled(1.0)) < 1e-20);
    // Combo, worst: wBCE = -0.5 ln 1e-7, DSC = 1/5.
    let combo = 0.5 * (-0.5 * ln_clip) - 0.5 * 0.2;
    assert_close(loss("kind = \"combo\"", &filled(0.0), &filled(1.0)), combo, "combo, worst");
    // Combo, perfect: wBCE = -0.5 ln(1 - 1e-7) (about 5e-8), DSC = 1.
    let perfect = 0.5 * (-0.5 * (1.0 - 1e-7_f64).ln()) - 0.5;
    assert_close(loss("kind = \"combo\"", &filled(1.0), &filled(1.0)), perfect, "combo, perfect");
}

#[test]
fn all_constant_and_branch_values_match_the_reference_notes() {
    let all = AdaptiveLog::default();
    assert!((all.offset() - -1.72322).abs() < 1e-5, "C = {}", all.offset());
    assert!((all.value(0.1) - 1.82322).abs() < 1e-5);
    let just_below = all.omega * (1.0 + 0.1 / all.epsilon).ln();
    assert!((just_below - 1.82322).abs() < 1e-5, "both branches meet at gamma");
    assert_eq!(all.value(0.0), 0.0);
    assert!((all.value(0.5) - (0.5 + 1.723_215_5)).abs() < 1e-6);
}

#[test]
fn all_slopes_on_both_sides_of_gamma() {
    let all = AdaptiveLog::default();
    let slope = |at: f64| {
        let l = Tensor::from(at).to_kind(Kind::Double).set_requires_grad(true);
        adaptive_log::apply(&all, &l).backward();
        l.grad().double_value(&[])
    };
    // Just above 0 (autograd takes the slope of |L| at exactly 0 as 0, as PyTorch does).
    assert!((slope(1e-12) - 20.0).abs() < 1e-9, "omega / epsilon at 0+");
    assert!((slope(0.05) - 10.0 / 0.55).abs() < 1e-9);
    assert!((slope(0.1 - 1e-9) - 10.0 / 0.6).abs() < 1e-6, "16.67 just below gamma");
    assert!((slope(0.1) - 1.0).abs() < 1e-12, "1 from gamma on");
    assert!((slope(0.7) - 1.0).abs() < 1e-12);
    assert_eq!(all.derivative(0.0), 20.0);
    assert!((all.derivative(0.0999) - 10.0 / 0.5999).abs() < 1e-9);
    assert_eq!(all.derivative(0.1), 1.0);
}

#[test]
fn all_wraps_the_batch_dice_by_default_and_per_image_on_request() {
    // Image 0 perfect, image 1 half right: per-image ALL differs from ALL of the batch Dice.
    let pred = Tensor::from_slice(&[1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0]).view([2, 1, 2, 2]);
    let target = Tensor::from_slice(&[1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]).view([2, 1, 2, 2]);
    let dice = loss("kind = \"dice\"", &pred, &target);
    assert_close(dice, 1.0 - (2.0 * 3.0 + 1.0) / (4.0 + 4.0 + 1.0), "batch dice");
    let all = AdaptiveLog::default();
    assert_close(loss("kind = \"all\"", &pred, &target), all.value(dice), "ALL of the batch Dice");
    let per_image = [0.0, 1.0 - (2.0 + 1.0) / (2.0 + 2.0 + 1.0)];
    let expected = (all.value(per_image[0]) + all.value(per_image[1])) / 2.0;
    assert_close(loss("kind = \"all\"\nreduction = \"image\"", &pred, &target), expected, "per-image ALL");
    let tversky = loss("kind = \"tversky\"\nalpha = 0.6", &pred, &target);
    assert_close(
        loss("kind = \"all\"\nbase = {kind = \"tversky\", alpha = 0.6}", &pred, &target),
        all.value(tversky),
        "ALL of Tversky",
    );
}

#[test]
fn bad_inputs_are_errors_naming_the_problem() {
    let dice = Loss::new(config("kind = \"dice\""));
    let target = filled(1.0);
    let cases = [
        (Tensor::zeros([1, 1, 2, 3], (Kind::Double, tch::Device::Cpu)), "shape [1, 1, 2, 3]"),
        (filled(1.5), "outside [0, 1]"),
        (filled(f64::NAN), "not finite"),
        (filled(1.0).to_kind(Kind::Int64), "floating-point"),
    ];
    for (pred, expected) in cases {
        let err = dice.compute(&pred, &target).expect_err("must be refused").to_string();
        assert!(err.contains(expected), "{err:?} should mention {expected:?}");
    }
    let err = dice.compute(&filled(0.5), &filled(255.0)).expect_err("labels must be 0/1").to_string();
    assert!(err.contains("other than 0 and 1") && err.contains("255"), "{err}");
    let empty = Tensor::zeros([0, 1, 2, 2], (Kind::Double, tch::Device::Cpu));
    assert!(dice.compute(&empty, &empty).is_err());
}

/// Central finite differences of `config` at `pred`, against autograd.
fn assert_gradient_matches_finite_differences(text: &str, pred: &Tensor, target: &Tensor) {
    let loss = Loss::new(config(text));
    let p = pred.copy().set_requires_grad(true);
    loss.compute(&p, target).expect("valid").backward();
    let analytic = Vec::<f64>::try_from(p.grad().flatten(0, -1)).expect("f64 vector");
    let base = Vec::<f64>::try_from(pred.flatten(0, -1)).expect("f64 vector");
    let h = 1e-6;
    let eval = |values: &[f64]| {
        let t = Tensor::from_slice(values).view_as(pred);
        loss.compute(&t, target).expect("valid").double_value(&[])
    };
    for i in 0..base.len() {
        let (mut up, mut down) = (base.clone(), base.clone());
        up[i] += h;
        down[i] -= h;
        let numeric = (eval(&up) - eval(&down)) / (2.0 * h);
        let tolerance = 1e-6 * numeric.abs().max(1.0);
        assert!(
            (analytic[i] - numeric).abs() < tolerance,
            "{text}: pixel {i}: autograd {} vs finite difference {numeric}",
            analytic[i]
        );
    }
}

#[test]
fn autograd_gradients_agree_with_finite_differences() {
    // Scattered values in [0, 1) without libtorch's process-wide generator: seeding or drawing
    // from it here would shift the initial weights of a network another test builds meanwhile.
    let scattered =
        |k: f64| (Tensor::arange(32, (Kind::Double, tch::Device::Cpu)) * k + 0.5).sin().abs().reshape([2, 1, 4, 4]);
    let target = scattered(12.9898).lt(0.4).to_kind(Kind::Double);
    let rough = scattered(78.233) * 0.9 + 0.05;
    // Close to the target, so that the Dice loss falls below gamma (ALL's log branch).
    let good = (&target * 0.9 + 0.05) * 0.2 + &target * 0.78 + 0.01;
    let configs = [
        "kind = \"dice\"",
        "kind = \"dice\"\nreduction = \"image\"",
        "kind = \"jaccard\"",
        "kind = \"tversky\"\nalpha = 0.3",
        "kind = \"focal_tversky\"",
        "kind = \"focal\"",
        "kind = \"combo\"",
        "kind = \"all\"",
        "kind = \"all\"\nreduction = \"image\"",
        "kind = \"all\"\nbase = \"focal\"",
        "kind = \"all\"\nbase = \"combo\"",
    ];
    let dice_of_good = loss("kind = \"dice\"", &good, &target);
    assert!(dice_of_good < 0.1, "the good prediction must exercise ALL's log branch, dice = {dice_of_good}");
    for text in configs {
        assert_gradient_matches_finite_differences(text, &rough, &target);
        assert_gradient_matches_finite_differences(text, &good, &target);
    }
}
