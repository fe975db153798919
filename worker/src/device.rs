//! Which libtorch device to run on, from its name: the `--device` of every command (a worker's
//! may name several: every GPU of its host by default), and the `ALLSWEEP_TEST_DEVICE` of the
//! trainer's tests, so that the same tests run on a GPU machine (scripts/gpu-check.sh) as here.

use tch::Device;

/// Parses `auto` (CUDA when present), `cpu`, `cuda` or `cuda:N`.
pub fn parse(text: &str) -> Result<Device, String> {
    match text {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda(0)),
        other => other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
            .map(Device::Cuda)
            .ok_or_else(|| format!("unknown device {other:?}; expected auto, cpu, cuda or cuda:N")),
    }
}

/// A worker's devices: `auto` (every visible GPU, else the CPU), `all` (every visible GPU; an
/// error without one), or a comma-separated list of single devices (`cuda:0,cuda:2`), each
/// named once. `gpus` is how many CUDA devices libtorch sees.
pub fn parse_list(text: &str, gpus: usize) -> Result<Vec<Device>, String> {
    let every_gpu = || (0..gpus).map(Device::Cuda).collect::<Vec<_>>();
    match text.trim() {
        "auto" if gpus > 0 => return Ok(every_gpu()),
        "auto" => return Ok(vec![Device::Cpu]),
        "all" if gpus > 0 => return Ok(every_gpu()),
        "all" => return Err("all: libtorch sees no CUDA device on this machine".into()),
        _ => {}
    }
    let mut devices = Vec::new();
    for name in text.split(',').map(str::trim) {
        if name == "auto" || name == "all" {
            return Err(format!("{name} cannot be part of a list"));
        }
        let device = match parse(name)? {
            Device::Cuda(n) if n >= gpus => {
                return Err(format!("{name}: libtorch sees {gpus} CUDA device(s) on this machine"))
            }
            device => device,
        };
        if devices.contains(&device) {
            return Err(format!("{name} is named twice"));
        }
        devices.push(device);
    }
    Ok(devices)
}

/// The device the trainer's tests run on: `ALLSWEEP_TEST_DEVICE` (`cpu`, `cuda`, `cuda:N`),
/// the CPU when it is not set. A name that does not parse, or a CUDA device on a machine
/// without one, stops the test with the reason rather than testing the CPU in its place.
pub fn for_tests() -> Device {
    let Ok(name) = std::env::var("ALLSWEEP_TEST_DEVICE") else { return Device::Cpu };
    let device = parse(name.trim()).unwrap_or_else(|e| panic!("ALLSWEEP_TEST_DEVICE: {e}"));
    if device.is_cuda() && !tch::Cuda::is_available() {
        panic!("ALLSWEEP_TEST_DEVICE={name}, but libtorch sees no CUDA device here");
    }
    device
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse_and_bad_ones_say_what_is_accepted() {
        assert_eq!(parse("cpu"), Ok(Device::Cpu));
        assert_eq!(parse("cuda"), Ok(Device::Cuda(0)));
        assert_eq!(parse("cuda:2"), Ok(Device::Cuda(2)));
        assert!(parse("gpu").unwrap_err().contains("expected auto, cpu, cuda or cuda:N"));
        assert!(parse("cuda:x").is_err());
    }

    #[test]
    fn a_worker_takes_every_gpu_by_default_or_the_ones_named() {
        assert_eq!(parse_list("auto", 0), Ok(vec![Device::Cpu]), "a CPU machine");
        assert_eq!(parse_list("auto", 2), Ok(vec![Device::Cuda(0), Device::Cuda(1)]));
        assert_eq!(parse_list("all", 3).map(|d| d.len()), Ok(3));
        assert!(parse_list("all", 0).unwrap_err().contains("no CUDA device"));
        assert_eq!(parse_list("cuda:0, cuda:2", 4), Ok(vec![Device::Cuda(0), Device::Cuda(2)]));
        assert_eq!(parse_list("cpu", 4), Ok(vec![Device::Cpu]));
        assert!(parse_list("cuda:5", 4).unwrap_err().contains("sees 4 CUDA device(s)"));
        assert!(parse_list("cuda:1,cuda:1", 4).unwrap_err().contains("named twice"));
        assert!(parse_list("cuda:0,auto", 4).unwrap_err().contains("auto cannot be part of a list"));
        assert!(parse_list("cuda:0,gpu", 4).unwrap_err().contains("unknown device \"gpu\""));
    }
}
