//! The trainer on small synthetic data: it learns, it is deterministic on CPU, a stopped and
//! resumed run ends exactly like an uninterrupted one, a diverging run stops with its epoch
//! and step, and each failure says whose fault it is (this machine's, the config's, or none).

use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use allsweep_config::TrialConfig;

use super::*;

fn config(loss: &str, epochs: usize) -> TrialConfig {
    let text = format!(
        "name = \"t\"\nseed = 1\n[dataset]\nkind = \"synthetic\"\nshape = \"nuclei\"\nimages = 48\nforeground = 0.2\nsize = [32, 32]\n\
         [model]\narch = \"unet\"\nwidth = 8\nbatch_norm = \"pytorch\"\n[train]\nepochs = {epochs}\nbatch_size = 4\nlr = 3e-3\n[loss]\n{loss}\n"
    );
    TrialConfig::from_toml_str(&text).unwrap()
}

/// Losses are read every 3 steps, as on a GPU (every 16 there): a read that does not fall on
/// an epoch's end, a stop or a divergence between two reads are all exercised on the CPU.
/// On the device `ALLSWEEP_TEST_DEVICE` names (the CPU by default; scripts/gpu-check.sh runs
/// these tests on CUDA).
fn options<'a>(checkpoint: Option<PathBuf>, resume: Option<PathBuf>, stop: Option<&'a AtomicBool>) -> RunOptions<'a> {
    let device = crate::device::for_tests();
    RunOptions {
        device,
        data_dir: None,
        checkpoint,
        resume,
        stop,
        loss_read_every: 3,
        float64: false,
        pause_after_epoch: None,
    }
}

fn quiet() -> impl Fn(TrainEvent) {
    |_| {}
}

#[test]
fn a_trial_learns_and_reports_every_epoch() {
    let events = Mutex::new(Vec::new());
    let sink = |e: TrainEvent| events.lock().unwrap().push(e);
    let waits_before = step_waits();
    let outcome = train(&config("kind = \"all\"", 5), &options(None, None, None), &sink).unwrap();
    assert_eq!(outcome.epochs.len(), 5);
    // 10 steps an epoch, read every 3: after steps 3, 6, 9 and at the epoch's end. The step
    // loop waits for the device nowhere else.
    assert_eq!(step_waits() - waits_before, 5 * 4, "host waits in the training steps");
    let first = &outcome.epochs[0];
    let last = &outcome.epochs[4];
    assert!(last.train_loss < first.train_loss, "{} -> {}", first.train_loss, last.train_loss);
    assert!(outcome.test.jaccard > 0.3, "test Jaccard {} (all-background scores 0)", outcome.test.jaccard);
    assert!(outcome.roc.len() > 2 && outcome.test.auc.is_some());
    let events = events.lock().unwrap();
    assert!(matches!(events[0], TrainEvent::Started { epoch: 0, step: 0, epochs: 5, steps_per_epoch: 10, .. }));
    assert_eq!(events.iter().filter(|e| matches!(e, TrainEvent::Epoch(_))).count(), 5);
    assert_eq!(events.iter().filter(|e| matches!(e, TrainEvent::Step { .. })).count(), 50);
}

#[test]
fn same_config_and_seed_give_the_same_result_on_cpu() {
    let a = train(&config("kind = \"dice\"", 2), &options(None, None, None), &quiet()).unwrap();
    let b = train(&config("kind = \"dice\"", 2), &options(None, None, None), &quiet()).unwrap();
    let measured = |o: &TrialOutcome| {
        o.epochs.iter().map(|r| (r.train_loss, r.validation_loss, r.validation.clone())).collect::<Vec<_>>()
    };
    assert_eq!(measured(&a), measured(&b), "every loss and metric, bit for bit");
    assert_eq!(a.test, b.test);
}

/// Stops when `when` matches an event, resumes from the checkpoint, and compares with an
/// uninterrupted run.
fn assert_resume_matches(when: impl Fn(&TrainEvent) -> bool) {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("trial.ckpt");
    let config = config("kind = \"all\"", 3);
    let straight = train(&config, &options(None, None, None), &quiet()).unwrap();

    let stop = AtomicBool::new(false);
    let sink = |e: TrainEvent| {
        if when(&e) {
            stop.store(true, Ordering::Relaxed);
        }
    };
    let stopped = train(&config, &options(Some(ckpt.clone()), None, Some(&stop)), &sink);
    let Err(TrainError::Stopped { epoch, step }) = stopped else { panic!("expected a stop, got {stopped:?}") };
    assert_eq!(TrainError::Stopped { epoch, step }.fault(), None, "a stop on request is no failure");
    assert_eq!(checkpoint_position(&ckpt).unwrap(), (epoch, step));

    let resumed = train(&config, &options(Some(ckpt.clone()), Some(ckpt.clone()), None), &quiet()).unwrap();
    assert_eq!(resumed.resumed_from, Some((epoch, step)));
    assert_eq!(resumed.epochs.len(), 3);
    for (a, b) in straight.epochs.iter().zip(&resumed.epochs) {
        assert!((a.train_loss - b.train_loss).abs() < 1e-6, "epoch {}: {} vs {}", a.epoch, a.train_loss, b.train_loss);
        assert!((a.validation.jaccard - b.validation.jaccard).abs() < 1e-6);
    }
    assert!((straight.test.jaccard - resumed.test.jaccard).abs() < 1e-6);
    assert_eq!(straight.test.counts, resumed.test.counts);
    assert!((straight.test.auc.unwrap() - resumed.test.auc.unwrap()).abs() < 1e-6);
}

#[test]
fn resuming_after_an_epoch_gives_the_uninterrupted_result() {
    assert_resume_matches(|e| matches!(e, TrainEvent::Epoch(r) if r.epoch == 1));
}

#[test]
fn resuming_mid_epoch_gives_the_uninterrupted_result() {
    assert_resume_matches(|e| matches!(e, TrainEvent::Step { epoch: 1, step: 1, .. }));
}

#[test]
fn a_run_paused_at_a_rung_resumes_there_and_ends_like_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("trial.ckpt");
    let config = config("kind = \"all\"", 3);
    let straight = train(&config, &options(None, None, None), &quiet()).unwrap();
    let epochs = Mutex::new(Vec::new());
    let sink = |e: TrainEvent| {
        if let TrainEvent::Epoch(r) = e {
            epochs.lock().unwrap().push(r.epoch);
        }
    };
    let paused = RunOptions { pause_after_epoch: Some(2), ..options(Some(ckpt.clone()), None, None) };
    let ended = train(&config, &paused, &sink);
    assert!(matches!(ended, Err(TrainError::Paused { epoch: 2 })), "{ended:?}");
    assert_eq!(ended.unwrap_err().fault(), None, "a pause is no failure");
    assert_eq!(*epochs.lock().unwrap(), vec![1, 2], "epochs 1 and 2 reported, no more trained");
    assert_eq!(checkpoint_position(&ckpt).unwrap(), (2, 0), "its checkpoint sits at the rung");
    // The last epoch is never a pause: the run finishes and is tested.
    let last = RunOptions { pause_after_epoch: Some(3), ..options(Some(ckpt.clone()), Some(ckpt.clone()), None) };
    let resumed = train(&config, &last, &quiet()).unwrap();
    assert_eq!(resumed.resumed_from, Some((2, 0)));
    assert_eq!(resumed.epochs.len(), 3);
    let (a, b) = (straight.epochs[2].train_loss, resumed.epochs[2].train_loss);
    assert!((a - b).abs() < 1e-6, "the last epoch: {a} vs {b}");
    assert_eq!(straight.test.counts, resumed.test.counts);
}

#[test]
fn a_checkpoint_of_another_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("a.ckpt");
    train(&config("kind = \"dice\"", 1), &options(Some(ckpt.clone()), None, None), &quiet()).unwrap();
    let err = train(&config("kind = \"all\"", 2), &options(None, Some(ckpt), None), &quiet()).unwrap_err();
    assert!(err.to_string().contains("another trial config"), "{err}");
}

#[test]
fn an_infinite_loss_ends_the_run_as_diverged_with_epoch_and_step() {
    // omega this large makes ALL's offset -inf: the first loss is +inf.
    let err = train(&config("kind = \"all\"\nomega = 1e308", 2), &options(None, None, None), &quiet()).unwrap_err();
    assert!(matches!(err, TrainError::Diverged { epoch: 1, step: 1, .. }), "{err:?}");
    assert_eq!(err.fault(), Some(TrialFault::Permanent), "it diverges again anywhere");
    assert!(err.to_string().starts_with("diverged: the loss was inf at epoch 1, step 1"), "{err}");
}

/// A DRIVE trial whose relative root resolves against `data_dir`.
fn drive_config() -> TrialConfig {
    let text =
        "name = \"d\"\nseed = 1\n[dataset]\nkind = \"drive\"\nroot = \"DRIVE\"\nlimit = 3\npatches_per_image = 8\n\
                [model]\narch = \"unet\"\nwidth = 8\nbatch_norm = \"pytorch\"\n[train]\nepochs = 1\nbatch_size = 4\n[loss]\nkind = \"dice\"\n";
    TrialConfig::from_toml_str(text).unwrap()
}

fn fault_with_data_dir(data_dir: &Path) -> (Option<TrialFault>, String) {
    let run = RunOptions { data_dir: Some(data_dir.to_path_buf()), ..options(None, None, None) };
    let err = train(&drive_config(), &run, &quiet()).expect_err("no DRIVE data there");
    (err.fault(), err.to_string())
}

#[test]
fn a_data_set_missing_on_this_machine_is_the_worker_s_fault() {
    let dir = tempfile::tempdir().unwrap();
    let (fault, message) = fault_with_data_dir(dir.path());
    assert_eq!(fault, Some(TrialFault::Worker), "{message}");
    assert!(message.contains(&dir.path().join("DRIVE").display().to_string()), "names the missing root: {message}");
    // What an unmounted mount point looks like: the folder is there, empty.
    std::fs::create_dir(dir.path().join("DRIVE")).unwrap();
    let (fault, message) = fault_with_data_dir(dir.path());
    assert_eq!(fault, Some(TrialFault::Worker), "{message}");
    assert!(message.contains("training"), "names the missing subfolder: {message}");
}

#[test]
fn a_config_the_data_cannot_serve_fails_the_same_everywhere() {
    let text = "name = \"t\"\nseed = 1\n[dataset]\nkind = \"synthetic\"\nimages = 2\nsize = [32, 32]\n\
                [model]\narch = \"unet\"\nwidth = 8\nbatch_norm = \"pytorch\"\n[train]\nepochs = 1\nbatch_size = 4\n[loss]\nkind = \"dice\"\n";
    let config = TrialConfig::from_toml_str(text).unwrap();
    let err = train(&config, &options(None, None, None), &quiet()).expect_err("two images cannot train and validate");
    assert_eq!(err.fault(), Some(TrialFault::Permanent), "{err}");
}

#[test]
fn steps_cover_every_sample_without_a_lone_last_sample() {
    assert_eq!(steps_per_epoch(16, 4), 4);
    assert_eq!(steps_per_epoch(17, 4), 4, "the 17th sample joins the last batch");
    assert_eq!(steps_per_epoch(18, 4), 5);
    let order: Vec<usize> = (0..17).collect();
    assert_eq!(batch_indices(&order, 3, 4, 4).len(), 5);
}

/// A small trial with the authors' protocol: the weights of the best validation epoch, the
/// rate halved after every epoch that does not improve on the best validation loss. A rate
/// this high makes the validation loss wander once it is low (which epoch first fails to
/// improve depends on the CPU's rounding: epoch 12 on one machine, 11 on another).
fn authors_protocol(epochs: usize, select: &str) -> TrialConfig {
    let text = format!(
        "name = \"p\"\nseed = 2\n[dataset]\nkind = \"synthetic\"\nshape = \"nuclei\"\nimages = 32\nforeground = 0.2\nsize = [32, 32]\n\
         validation_fraction = 0.25\n[model]\narch = \"unet\"\nwidth = 8\nbatch_norm = \"pytorch\"\n\
         [train]\nepochs = {epochs}\nbatch_size = 4\nlr = 0.1\nselect = \"{select}\"\nlr_schedule = \"plateau\"\n\
         lr_patience = 1\nlr_threshold = 0\nlr_factor = 0.5\nlr_floor = 1e-3\n[loss]\nkind = \"dice\"\n"
    );
    TrialConfig::from_toml_str(&text).unwrap()
}

#[test]
fn best_validation_tests_the_best_epoch_s_weights_and_the_plateau_rule_cuts_the_rate() {
    // Which epochs fail to improve depends on the CPU's float rounding (the vector width its
    // kernels use). Find them in a 20-epoch run, then train the trial until the second such
    // epoch: the rate was cut after the first, and the best epoch comes before the last, on
    // any CPU. The schedule looks only at epochs already trained, so the shorter run is the
    // longer one's beginning.
    let probe = train(&authors_protocol(20, "best_validation"), &options(None, None, None), &quiet()).unwrap();
    let probed: Vec<f64> = probe.epochs.iter().map(|r| r.validation_loss).collect();
    let not_improving: Vec<usize> =
        (1..probed.len()).filter(|&i| probed[..i].iter().any(|&earlier| earlier <= probed[i])).collect();
    assert!(not_improving.len() >= 2, "at rate 0.1 the validation loss wanders: {probed:?}");
    let epochs = not_improving[1] + 1;
    let best = train(&authors_protocol(epochs, "best_validation"), &options(None, None, None), &quiet()).unwrap();
    let losses: Vec<f64> = best.epochs.iter().map(|r| r.validation_loss).collect();
    let mut chosen = 0;
    for (i, &loss) in losses.iter().enumerate() {
        if loss < losses[chosen] {
            chosen = i;
        }
    }
    let chosen = chosen + 1;
    assert_eq!(best.selected_epoch, chosen, "the first epoch of lowest validation loss: {losses:?}");
    assert!(chosen < epochs, "this trial is meant to have its best epoch before the last: {losses:?}");

    // Each epoch trained at the rate the rule gives from the epochs before it (patience 1,
    // threshold 0: halved after each epoch that is not a new best, never below 1e-3).
    let (mut lr, mut lowest) = (0.1_f64, f64::INFINITY);
    for record in &best.epochs {
        assert!((record.lr - lr).abs() < 1e-15, "epoch {}: rate {} where the rule gives {lr}", record.epoch, record.lr);
        if record.validation_loss < lowest {
            lowest = record.validation_loss;
        } else {
            lr = (lr * 0.5).max(1e-3);
        }
    }
    assert!(best.epochs.iter().any(|r| r.lr < 0.1), "the rate fell at least once: {:?}", best.epochs);

    // The same trial trained for just the chosen epochs and tested on its last weights has
    // the same test metrics, bit for bit: the tested weights are the best epoch's.
    let short = train(&authors_protocol(chosen, "last"), &options(None, None, None), &quiet()).unwrap();
    assert_eq!(short.selected_epoch, chosen);
    for (a, b) in short.epochs.iter().zip(&best.epochs) {
        assert_eq!(
            (a.train_loss, a.validation_loss, a.lr),
            (b.train_loss, b.validation_loss, b.lr),
            "epoch {}",
            a.epoch
        );
    }
    assert_eq!(short.test, best.test, "pooled test metrics of the best epoch's weights");
    assert_eq!(short.test_keras, best.test_keras, "and the Keras-style ones");
    assert_ne!(best.test, train(&authors_protocol(epochs, "last"), &options(None, None, None), &quiet()).unwrap().test);

    // Stopped after the best epoch and resumed, the run still tests the best epoch's weights:
    // the checkpoint carries them.
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("trial.ckpt");
    let stop = AtomicBool::new(false);
    let sink = |e: TrainEvent| {
        if matches!(e, TrainEvent::Step { epoch, step: 1, .. } if epoch == chosen) {
            stop.store(true, Ordering::Relaxed);
        }
    };
    let config = authors_protocol(epochs, "best_validation");
    let stopped = train(&config, &options(Some(ckpt.clone()), None, Some(&stop)), &sink);
    assert!(matches!(stopped, Err(TrainError::Stopped { .. })), "{stopped:?}");
    let resumed = train(&config, &options(Some(ckpt.clone()), Some(ckpt), None), &quiet()).unwrap();
    assert_eq!((resumed.selected_epoch, &resumed.test), (chosen, &best.test));
}

#[test]
fn a_bf16_trial_learns_and_records_its_precision() {
    let text = config("kind = \"dice\"", 3);
    let mut bf16 = text.clone();
    bf16.train.precision = allsweep_config::Precision::Bf16;
    let outcome = train(&bf16, &options(None, None, None), &quiet()).unwrap();
    let (first, last) = (&outcome.epochs[0], &outcome.epochs[2]);
    assert!(last.train_loss < first.train_loss, "{} -> {}", first.train_loss, last.train_loss);
    assert!(outcome.test.jaccard > 0.2, "test Jaccard {}", outcome.test.jaccard);
    let fp32 = train(&text, &options(None, None, None), &quiet()).unwrap();
    assert_ne!(fp32.epochs[0].train_loss, first.train_loss, "the two precisions train differently");
    assert!(fingerprint(&bf16).contains("\"precision\":\"bf16\""), "the precision is part of the config");
}

#[test]
fn libtorch_running_out_of_memory_is_caught_and_asks_for_more_room() {
    // A real allocation failure of libtorch's CPU allocator (4 PiB), raised as a panic as it
    // is inside the networks' layers.
    let caught = std::panic::catch_unwind(|| tch::Tensor::zeros([1i64 << 50], (tch::Kind::Float, tch::Device::Cpu)));
    let message = panic_message(caught.expect_err("4 PiB cannot be allocated").as_ref());
    assert!(is_out_of_memory(&message), "{message}");
    assert_eq!(TrainError::Panicked(message).fault(), Some(TrialFault::OutOfMemory));
    let cuda = "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 139.72 GiB";
    assert_eq!(TrainError::Panicked(cuda.into()).fault(), Some(TrialFault::OutOfMemory));
    assert_eq!(TrainError::Panicked("shape '[16, 3]' is invalid".into()).fault(), Some(TrialFault::Retry));
}
