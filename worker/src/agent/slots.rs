//! Which device a new trial goes to, and what the worker asks the coordinator for. A device
//! takes trials up to `--slots`; when the worker knows a device's memory (a GPU through NVML,
//! or a declared `--memory-budget`), it also takes them only while their estimates fit in
//! what is left of it, and the lease request says how much that is, so that the coordinator
//! hands out only trials that fit. With `--fuse N` a slot holds a fused group of up to N
//! trials (one thread, one network): the device takes `slots x N` trials, and a group goes
//! to one device with room for all its members.

use tch::Device;

/// A device and how much trial memory it has, when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRoom {
    pub device: Device,
    /// Bytes trials may take on it together; `None`: unknown (slots alone decide).
    pub budget: Option<u64>,
}

/// A running trial: where it runs and the memory its lease reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub device: Device,
    pub memory_bytes: u64,
}

/// What a lease request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ask {
    pub free_slots: u32,
    /// The memory free on the device with the most (0: not memory-aware).
    pub free_memory_bytes: u64,
    /// The most trials the worker trains as one fused group (1: each alone).
    pub fuse: u32,
}

/// The devices of a worker and the trials each may take.
#[derive(Debug, Clone)]
pub struct Slots {
    pub rooms: Vec<DeviceRoom>,
    /// Trials at once per device, a cap even when memory allows more (`--slots` times
    /// `fuse`).
    pub per_device: u32,
    /// The most trials of one fused group (1: each trial alone).
    pub fuse: u32,
}

impl Slots {
    /// Trials this worker trains at once at most: its slots on each of its devices.
    pub fn capacity(&self) -> u32 {
        self.per_device.saturating_mul(self.rooms.len() as u32)
    }

    /// Whether every device's memory is known: leases are then memory-aware.
    pub fn memory_aware(&self) -> bool {
        !self.rooms.is_empty() && self.rooms.iter().all(|r| r.budget.is_some())
    }

    fn load(device: Device, running: &[Placed]) -> (u32, u64) {
        running
            .iter()
            .filter(|p| p.device == device)
            .fold((0, 0), |(n, bytes), p| (n + 1, bytes.saturating_add(p.memory_bytes)))
    }

    /// Free slots and free memory of each device.
    fn free<'a>(&'a self, running: &'a [Placed]) -> impl Iterator<Item = (Device, u32, Option<u64>)> + 'a {
        self.rooms.iter().map(move |room| {
            let (trials, reserved) = Self::load(room.device, running);
            (room.device, self.per_device.saturating_sub(trials), room.budget.map(|b| b.saturating_sub(reserved)))
        })
    }

    /// What to ask for now; `None` when nothing is free. Memory-aware: the slots and memory
    /// of the device with the most memory free (trials that fit there); otherwise every free
    /// slot of the worker.
    pub fn ask(&self, running: &[Placed]) -> Option<Ask> {
        if !self.memory_aware() {
            let free_slots: u32 = self.free(running).map(|(_, slots, _)| slots).sum();
            return (free_slots > 0).then_some(Ask { free_slots, free_memory_bytes: 0, fuse: self.fuse });
        }
        self.free(running)
            .filter(|(_, slots, memory)| *slots > 0 && memory.unwrap_or(0) > 0)
            .max_by_key(|(_, _, memory)| memory.unwrap_or(0))
            .map(|(_, free_slots, memory)| Ask { free_slots, free_memory_bytes: memory.unwrap_or(0), fuse: self.fuse })
    }

    /// The device a leased trial, or a fused group of them, goes to (`members`: the memory
    /// each needs): one with a free slot for each and, memory-aware, room for all of them
    /// together; the least loaded (most memory free) first, the first listed on a tie.
    /// `None`: it fits nowhere now.
    pub fn place_group(&self, running: &[Placed], members: &[u64]) -> Option<Device> {
        let count = members.len() as u32;
        let memory_bytes = members.iter().fold(0u64, |sum, m| sum.saturating_add(*m));
        let mut best: Option<(Device, u32, u64)> = None;
        for (device, slots, memory) in self.free(running) {
            let room = memory.unwrap_or(u64::MAX);
            if slots < count.max(1) || (self.memory_aware() && room < memory_bytes) {
                continue;
            }
            let better = match best {
                None => true,
                Some((_, _, best_room)) if self.memory_aware() => room > best_room,
                Some((_, best_slots, _)) => slots > best_slots,
            };
            if better {
                best = Some((device, slots, room));
            }
        }
        best.map(|(device, _, _)| device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn placed(device: Device, gib: u64) -> Placed {
        Placed { device, memory_bytes: gib * GIB }
    }

    #[test]
    fn without_memory_figures_slots_alone_decide_and_the_least_loaded_device_takes_the_next() {
        let slots = Slots {
            rooms: vec![
                DeviceRoom { device: Device::Cuda(0), budget: None },
                DeviceRoom { device: Device::Cuda(1), budget: None },
            ],
            per_device: 2,
            fuse: 1,
        };
        assert!(!slots.memory_aware());
        assert_eq!(slots.ask(&[]), Some(Ask { free_slots: 4, free_memory_bytes: 0, fuse: 1 }));
        let one = [placed(Device::Cuda(0), 50)];
        assert_eq!(slots.place_group(&one, &[1000 * GIB]), Some(Device::Cuda(1)), "memory is not weighed");
        let full = [
            placed(Device::Cuda(0), 1),
            placed(Device::Cuda(0), 1),
            placed(Device::Cuda(1), 1),
            placed(Device::Cuda(1), 1),
        ];
        assert_eq!(slots.ask(&full), None);
        assert_eq!(slots.place_group(&full, &[1]), None);
    }

    #[test]
    fn with_a_budget_a_device_takes_trials_while_they_fit_and_asks_for_what_is_left() {
        let slots = Slots {
            rooms: vec![
                DeviceRoom { device: Device::Cuda(0), budget: Some(10 * GIB) },
                DeviceRoom { device: Device::Cuda(1), budget: Some(10 * GIB) },
            ],
            per_device: 8,
            fuse: 1,
        };
        assert!(slots.memory_aware());
        assert_eq!(slots.ask(&[]), Some(Ask { free_slots: 8, free_memory_bytes: 10 * GIB, fuse: 1 }));
        let running = [placed(Device::Cuda(0), 6), placed(Device::Cuda(1), 3)];
        // cuda:1 has 7 GiB left, cuda:0 4 GiB: the ask is cuda:1's.
        assert_eq!(slots.ask(&running), Some(Ask { free_slots: 7, free_memory_bytes: 7 * GIB, fuse: 1 }));
        assert_eq!(slots.place_group(&running, &[5 * GIB]), Some(Device::Cuda(1)));
        assert_eq!(slots.place_group(&running, &[8 * GIB]), None, "fits on neither device now");
        let full = [placed(Device::Cuda(0), 10), placed(Device::Cuda(1), 10)];
        assert_eq!(slots.ask(&full), None, "no memory left anywhere, though slots are free");
    }

    #[test]
    fn slots_remain_a_cap_when_memory_allows_more() {
        let slots =
            Slots { rooms: vec![DeviceRoom { device: Device::Cpu, budget: Some(100 * GIB) }], per_device: 2, fuse: 1 };
        let two = [placed(Device::Cpu, 1), placed(Device::Cpu, 1)];
        assert_eq!(slots.ask(&two), None);
        assert_eq!(slots.place_group(&two, &[1]), None);
        assert_eq!(slots.ask(&two[..1]), Some(Ask { free_slots: 1, free_memory_bytes: 99 * GIB, fuse: 1 }));
    }

    #[test]
    fn a_fused_group_goes_to_one_device_with_a_slot_and_room_for_every_member() {
        let slots = Slots {
            rooms: vec![
                DeviceRoom { device: Device::Cuda(0), budget: Some(10 * GIB) },
                DeviceRoom { device: Device::Cuda(1), budget: Some(10 * GIB) },
            ],
            per_device: 4,
            fuse: 4,
        };
        assert_eq!(slots.ask(&[]).map(|a| a.fuse), Some(4));
        let running = [placed(Device::Cuda(0), 1), placed(Device::Cuda(1), 5)];
        assert_eq!(slots.place_group(&running, &[3 * GIB; 3]), Some(Device::Cuda(0)), "9 GiB fit only on cuda:0");
        assert_eq!(slots.place_group(&running, &[GIB; 4]), None, "four need four free slots; each device has three");
        assert_eq!(slots.place_group(&running, &[4 * GIB; 3]), None, "12 GiB fit nowhere");
        let cpu = Slots { rooms: vec![DeviceRoom { device: Device::Cpu, budget: None }], per_device: 3, fuse: 3 };
        assert_eq!(cpu.place_group(&[], &[GIB; 3]), Some(Device::Cpu));
        assert_eq!(cpu.place_group(&[placed(Device::Cpu, 1)], &[GIB; 3]), None, "two slots left for three");
    }
}
