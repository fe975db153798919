//! A fused group on small synthetic data against the same trials trained alone: three
//! U-Nets (and three FocusNets) with different seeds, losses and learning rates (one on a plateau schedule, one
//! testing its best validation epoch) end with the metrics each reaches alone; a member's
//! checkpoint resumes alone or in a new group; a member that diverges or is stopped leaves
//! without changing the others' numbers.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use allsweep_config::TrialConfig;

use super::*;
use crate::data;
use crate::train::{checkpoint_position, train_on, TrialOutcome};

/// In float64 ([`RunOptions::float64`]) a group computes what each trial computes alone to
/// rounding: this bounds every loss and metric's difference. (Measured: about 1e-14.)
const TOLERANCE: f64 = 1e-9;

/// In float32 the grouped kernels sum in another order than the single network's, a
/// difference in the last bits of a gradient; Adam's first updates are plus or minus the
/// learning rate whatever a gradient's size, so a weight whose gradient is near zero can
/// move the other way, and the runs drift apart as two float32 runs of one trial on
/// different hardware would. The first step's losses agree to this relative tolerance.
const FIRST_STEP_FLOAT32: f64 = 1e-6;

fn config(name: &str, seed: u64, lr: f64, extra_train: &str, loss: &str, epochs: usize) -> TrialConfig {
    let text = format!(
        "name = \"{name}\"\nseed = {seed}\n[dataset]\nkind = \"synthetic\"\nshape = \"nuclei\"\nimages = 48\nforeground = 0.2\nsize = [32, 32]\nvalidation_fraction = 0.25\n\
         [model]\narch = \"unet\"\nwidth = 8\nbatch_norm = \"pytorch\"\n[train]\nepochs = {epochs}\nbatch_size = 4\nlr = {lr}\n{extra_train}\n[loss]\n{loss}\n"
    );
    TrialConfig::from_toml_str(&text).unwrap()
}

fn trio(epochs: usize) -> Vec<TrialConfig> {
    vec![
        config("dice", 3, 3e-3, "", "kind = \"dice\"", epochs),
        config(
            "all",
            4,
            1e-3,
            "lr_schedule = \"plateau\"\nlr_patience = 1\nlr_threshold = 0\nlr_factor = 0.5\nlr_floor = 1e-4",
            "kind = \"all\"\nbase = \"dice\"\nomega = 6.0\nepsilon = 0.5",
            epochs,
        ),
        config("tversky", 5, 2e-3, "select = \"best_validation\"", "kind = \"focal_tversky\"", epochs),
    ]
}

/// [`trio`] as FocusNets (whose layers carry L2 regularisers, scale 1).
fn focusnet_trio(epochs: usize) -> Vec<TrialConfig> {
    trio(epochs)
        .into_iter()
        .map(|mut c| {
            c.model.arch = allsweep_config::model::Arch::Focusnet;
            c
        })
        .collect()
}

/// Float64 options, losses read every 3 steps (as on a GPU, every 16 there).
fn options<'a>(checkpoint: Option<PathBuf>, resume: Option<PathBuf>, stop: Option<&'a AtomicBool>) -> RunOptions<'a> {
    let device = crate::device::for_tests();
    RunOptions {
        device,
        data_dir: None,
        checkpoint,
        resume,
        stop,
        loss_read_every: 3,
        float64: true,
        pause_after_epoch: None,
    }
}

fn float32() -> RunOptions<'static> {
    RunOptions { float64: false, ..options(None, None, None) }
}

fn quiet() -> impl Fn(TrainEvent) {
    |_| {}
}

fn load(config: &TrialConfig) -> std::sync::Arc<LoadedData> {
    data::cache::load(&config.dataset, None).unwrap()
}

/// The largest absolute difference between two outcomes' epoch losses, validation metrics
/// and test metrics; and whether they agree on everything else (epochs, selection, lrs).
fn largest_difference(a: &TrialOutcome, b: &TrialOutcome) -> f64 {
    assert_eq!(a.epochs.len(), b.epochs.len(), "epochs");
    assert_eq!(a.selected_epoch, b.selected_epoch, "the tested epoch");
    assert_eq!(a.parameters, b.parameters, "parameters");
    let mut worst = 0.0_f64;
    let mut compare = |x: f64, y: f64| worst = worst.max((x - y).abs());
    for (x, y) in a.epochs.iter().zip(&b.epochs) {
        assert_eq!(x.lr, y.lr, "epoch {}: the schedule's learning rate", x.epoch);
        compare(x.train_loss, y.train_loss);
        compare(x.validation_loss, y.validation_loss);
        compare(x.validation.dice, y.validation.dice);
        compare(x.validation.jaccard, y.validation.jaccard);
    }
    compare(a.test.dice, b.test.dice);
    compare(a.test.jaccard, b.test.jaccard);
    compare(a.test.accuracy, b.test.accuracy);
    worst
}

fn alone(config: &TrialConfig, data: &LoadedData) -> TrialOutcome {
    train_on(config, data, &options(None, None, None), &quiet()).unwrap()
}

#[test]
fn a_group_of_three_ends_as_each_trial_alone() {
    let configs = trio(3);
    let data = load(&configs[0]);
    let events: Vec<Mutex<Vec<TrainEvent>>> = (0..3).map(|_| Mutex::new(Vec::new())).collect();
    let sinks: Vec<_> = events.iter().map(|e| move |ev: TrainEvent| e.lock().unwrap().push(ev)).collect();
    let members: Vec<GroupMember> = configs
        .iter()
        .zip(&sinks)
        .map(|(config, sink)| GroupMember { config, options: options(None, None, None), events: sink })
        .collect();
    let fused = train_group(&members, &data).unwrap();
    for (g, (config, result)) in configs.iter().zip(fused).enumerate() {
        let fused = result.unwrap();
        let alone = alone(config, &data);
        let worst = largest_difference(&fused, &alone);
        println!("{}: largest difference from training alone {worst:e}", config.name);
        assert!(worst <= TOLERANCE, "{}: differs from training alone by {worst}", config.name);
        assert!(fused.test.dice > 0.1, "{}: it learned (test Dice {})", config.name, fused.test.dice);
        let events = events[g].lock().unwrap();
        let steps = steps_per_epoch(data.train.len(), 4);
        assert!(
            matches!(events[0], TrainEvent::Started { epoch: 0, step: 0, epochs: 3, steps_per_epoch, .. } if steps_per_epoch == steps)
        );
        assert_eq!(events.iter().filter(|e| matches!(e, TrainEvent::Step { .. })).count(), 3 * steps, "its own steps");
        assert_eq!(events.iter().filter(|e| matches!(e, TrainEvent::Epoch(_))).count(), 3);
    }
}

#[test]
fn a_members_checkpoint_resumes_alone_and_in_a_new_group() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (trio(1), trio(2));
    let data = load(&one[0]);
    let ckpt = |g: usize| dir.path().join(format!("{g}.ckpt"));
    let sink = quiet();
    let members: Vec<GroupMember> = one
        .iter()
        .enumerate()
        .map(|(g, config)| GroupMember { config, options: options(Some(ckpt(g)), None, None), events: &sink })
        .collect();
    for result in train_group(&members, &data).unwrap() {
        result.unwrap();
    }
    // Alone: the checkpoint is a trial's like any other, and the extended run picks it up.
    let resumed = train_on(&two[2], &data, &options(None, Some(ckpt(2)), None), &quiet()).unwrap();
    assert_eq!(resumed.resumed_from, Some((1, 0)));
    let straight = alone(&two[2], &data);
    let worst = largest_difference(&resumed, &straight);
    println!("resumed alone: largest difference {worst:e}");
    assert!(worst <= TOLERANCE, "resumed alone differs by {worst}");

    // In a new group of the same three.
    let members: Vec<GroupMember> = two
        .iter()
        .enumerate()
        .map(|(g, config)| GroupMember { config, options: options(None, Some(ckpt(g)), None), events: &sink })
        .collect();
    for (config, result) in two.iter().zip(train_group(&members, &data).unwrap()) {
        let resumed = result.unwrap();
        assert_eq!(resumed.resumed_from, Some((1, 0)));
        let worst = largest_difference(&resumed, &alone(config, &data));
        println!("{} resumed in a group: largest difference {worst:e}", config.name);
        assert!(worst <= TOLERANCE, "{}: resumed in a group differs by {worst}", config.name);
    }
}

#[test]
fn a_diverged_member_and_a_stopped_one_leave_and_the_other_ends_as_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut configs = trio(2);
    // An infinite loss from the first step, in float64 too: every error over 1e-12 divided
    // by a subnormal epsilon overflows.
    configs[1] = config("inf", 4, 1e-3, "", "kind = \"all\"\nepsilon = 1e-320", 2);
    let data = load(&configs[0]);
    let stop = AtomicBool::new(false);
    let stop_at_step_5 = |e: TrainEvent| {
        if matches!(e, TrainEvent::Step { epoch: 0, step: 4, .. }) {
            stop.store(true, Ordering::Relaxed);
        }
    };
    let ckpt = dir.path().join("stopped.ckpt");
    let sink = quiet();
    let members = vec![
        GroupMember { config: &configs[0], options: options(None, None, None), events: &sink },
        GroupMember { config: &configs[1], options: options(None, None, None), events: &sink },
        GroupMember {
            config: &configs[2],
            options: options(Some(ckpt.clone()), None, Some(&stop)),
            events: &stop_at_step_5,
        },
    ];
    let mut results = train_group(&members, &data).unwrap().into_iter();
    let (kept, diverged, stopped) = (results.next().unwrap(), results.next().unwrap(), results.next().unwrap());

    let diverged = diverged.unwrap_err();
    assert!(matches!(diverged, TrainError::Diverged { epoch: 1, step: 1, .. }), "{diverged:?}");
    // Stopped at the first step after step 5 was read (losses are read every 3 steps).
    let stopped = stopped.unwrap_err();
    assert!(matches!(stopped, TrainError::Stopped { epoch: 0, step: 6 }), "{stopped:?}");
    assert_eq!(checkpoint_position(&ckpt).unwrap(), (0, 6));

    let worst = largest_difference(&kept.unwrap(), &alone(&configs[0], &data));
    println!("beside a diverged and a stopped member: largest difference {worst:e}");
    assert!(worst <= TOLERANCE, "the member that stayed differs from training alone by {worst}");
    let resumed = train_on(&configs[2], &data, &options(None, Some(ckpt), None), &quiet()).unwrap();
    let worst = largest_difference(&resumed, &alone(&configs[2], &data));
    println!("stopped in a group, resumed alone: largest difference {worst:e}");
    assert!(worst <= TOLERANCE, "the stopped member, resumed alone, differs by {worst}");
}

#[test]
fn trials_that_cannot_share_a_network_are_refused_before_training() {
    let a = config("a", 1, 1e-3, "", "kind = \"dice\"", 2);
    let wider = {
        let mut b = a.clone();
        b.model.width = 16;
        b
    };
    let why = group_mismatch(&a, &wider).unwrap();
    assert!(why.starts_with("the network differs"), "{why}");
    let longer = config("b", 2, 1e-3, "", "kind = \"dice\"", 3);
    assert_eq!(group_mismatch(&a, &longer).unwrap(), "the epochs differs (2 vs 3)");
    assert_eq!(
        group_mismatch(&a, &config("c", 9, 5e-2, "", "kind = \"jaccard\"", 2)),
        None,
        "seed, lr and loss may differ"
    );

    let data = load(&a);
    let members = [
        GroupMember { config: &a, options: options(None, None, None), events: &quiet() },
        GroupMember { config: &wider, options: options(None, None, None), events: &quiet() },
    ];
    let err = train_group(&members, &data).unwrap_err();
    assert!(err.to_string().contains("member 1 (a): the network differs"), "{err}");
    assert_eq!(err.fault(), Some(allsweep_proto::fault::TrialFault::Retry));
}

/// On the CPU every kernel is deterministic; cuDNN's autotuned ones are not (the GPU check
/// runs these tests on CUDA), so there equality is float32's tolerance of the next test.
fn exact_on_this_device() -> bool {
    !crate::device::for_tests().is_cuda()
}

#[test]
fn in_float32_a_group_of_one_is_the_trial_alone_bit_for_bit() {
    let configs = trio(2);
    let data = load(&configs[0]);
    let sink = quiet();
    for config in &configs {
        let members = [GroupMember { config, options: float32(), events: &sink }];
        let fused = train_group(&members, &data).unwrap().pop().unwrap().unwrap();
        let alone = train_on(config, &data, &float32(), &quiet()).unwrap();
        let worst = largest_difference(&fused, &alone);
        let bound = if exact_on_this_device() { 0.0 } else { 0.05 };
        assert!(worst <= bound, "{}: {worst}", config.name);
    }
}

/// Three trials fused in float32: on the CPU, where each trial's convolution is its own
/// call, bit for bit; on a GPU the first step's losses agree to rounding and the runs then
/// drift apart (printed, and bounded by what still means "the same trial": within 0.05 of
/// every loss and metric after 2 epochs).
#[test]
fn in_float32_a_group_is_each_trial_alone_on_the_cpu_and_drifts_by_rounding_on_a_gpu() {
    let configs = trio(2);
    let data = load(&configs[0]);
    let losses: Vec<Mutex<Vec<f64>>> = (0..3).map(|_| Mutex::new(Vec::new())).collect();
    let sinks: Vec<_> = losses
        .iter()
        .map(|seen| {
            move |e: TrainEvent| {
                if let TrainEvent::Step { loss, .. } = e {
                    seen.lock().unwrap().push(loss)
                }
            }
        })
        .collect();
    let members: Vec<GroupMember> = configs
        .iter()
        .zip(&sinks)
        .map(|(config, sink)| GroupMember { config, options: float32(), events: sink })
        .collect();
    let fused = train_group(&members, &data).unwrap();
    for ((config, result), fused_losses) in configs.iter().zip(fused).zip(&losses) {
        let alone_losses = Mutex::new(Vec::new());
        let sink = |e: TrainEvent| {
            if let TrainEvent::Step { loss, .. } = e {
                alone_losses.lock().unwrap().push(loss)
            }
        };
        let alone = train_on(config, &data, &float32(), &sink).unwrap();
        let (a, b) = (fused_losses.lock().unwrap(), alone_losses.lock().unwrap());
        let first = (a[0] - b[0]).abs() / b[0].abs();
        assert!(first <= FIRST_STEP_FLOAT32, "{}: first step's loss differs by {first:e} (relative)", config.name);
        let worst = largest_difference(&result.unwrap(), &alone);
        println!("{} in float32: first step {first:e} (relative), after 2 epochs {worst:e}", config.name);
        let bound = if exact_on_this_device() { 0.0 } else { 0.05 };
        assert!(worst <= bound, "{}: after 2 epochs in float32, {worst}", config.name);
    }
}

/// Three FocusNets of different seeds, losses and learning rates (with their L2 terms) in one
/// group: in float64 each ends within rounding of the trial alone, in float32 bit for bit on
/// the CPU (within 0.05 after 2 epochs on a GPU, as U-Net's).
#[test]
fn a_focusnet_group_of_three_ends_as_each_trial_alone() {
    let configs = focusnet_trio(2);
    let data = load(&configs[0]);
    let sink = quiet();
    let float64: fn() -> RunOptions<'static> = || options(None, None, None);
    for (precision, opts, bound) in [
        ("float64", float64, TOLERANCE),
        ("float32", float32 as fn() -> RunOptions<'static>, if exact_on_this_device() { 0.0 } else { 0.05 }),
    ] {
        let members: Vec<GroupMember> =
            configs.iter().map(|config| GroupMember { config, options: opts(), events: &sink }).collect();
        let fused = train_group(&members, &data).unwrap();
        for (config, result) in configs.iter().zip(fused) {
            let fused = result.unwrap();
            let alone = train_on(config, &data, &opts(), &quiet()).unwrap();
            let worst = largest_difference(&fused, &alone);
            println!("FocusNet {} in {precision}: largest difference from training alone {worst:e}", config.name);
            assert!(worst <= bound, "FocusNet {} in {precision}: differs from training alone by {worst}", config.name);
            assert!(fused.parameters > 0 && fused.epochs.len() == 2);
        }
    }
}
