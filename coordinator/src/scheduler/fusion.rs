//! Fused groups: which of the trials one lease hands a worker train together as one network
//! (issue 11's horizontal fusion). A worker that fuses says how many trials a group may hold
//! (`LeaseRequest.fuse`); the trials of its lease that share a fuse key (the same data,
//! network, batch size, epochs and precision: `TrialConfig::fuse_key`) and resume from the
//! same epoch are cut, in lease order, into groups of at most that many. Each trial keeps
//! its own lease, attempt and fencing; the group id only says which attempts trained as one,
//! for the worker and for `allsweep status` and the database (`attempts.group_id`).

use std::collections::HashMap;

use allsweep_config::TrialConfig;

use crate::store::Leased;

/// The most trials a worker may ask to fuse into one network.
pub const MAX_FUSE: u32 = 256;

/// The group id of each of `leased` (in its order): `None` for a trial that trains alone
/// (`fuse` below 2, a config that does not read, or no
/// partner in this lease). A group's id is its first member's trial id and attempt, which
/// no other group can have.
pub fn groups(leased: &[Leased], fuse: u32) -> Vec<Option<String>> {
    let mut ids: Vec<Option<String>> = vec![None; leased.len()];
    if fuse < 2 {
        return ids;
    }
    // The members (indices into `leased`) of the group still filling, per key.
    let mut filling: HashMap<(String, Option<u32>), Vec<usize>> = HashMap::new();
    let mut closed: Vec<Vec<usize>> = Vec::new();
    for (i, lease) in leased.iter().enumerate() {
        let Some(key) = TrialConfig::from_toml_str(&lease.config_toml).ok().map(|c| c.fuse_key()) else {
            continue;
        };
        let members = filling.entry((key, lease.checkpoint_epoch)).or_default();
        members.push(i);
        if members.len() as u32 == fuse {
            closed.push(std::mem::take(members));
        }
    }
    closed.extend(filling.into_values());
    for members in closed.into_iter().filter(|m| m.len() >= 2) {
        let first = &leased[members[0]];
        let id = format!("{}.{}", first.trial_id, first.attempt);
        for i in members {
            ids[i] = Some(id.clone());
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leased(id: &str, width: u32, checkpoint_epoch: Option<u32>) -> Leased {
        let arch = if width == 0 { "focusnet" } else { "unet" };
        let width = width.max(8);
        Leased {
            trial_id: id.to_string(),
            sweep_id: "s".into(),
            attempt: 1,
            config_toml: format!(
                "name = \"{id}\"\nseed = 1\n[dataset]\nkind = \"synthetic\"\n[model]\narch = \"{arch}\"\nwidth = {width}\n[loss]\nkind = \"dice\"\n"
            ),
            checkpoint_epoch,
            lease_expires_at: 0,
            memory_bytes: 0,
            pause_at_epoch: None,
        }
    }

    #[test]
    fn compatible_trials_are_cut_into_groups_of_at_most_fuse_in_lease_order() {
        let lease: Vec<Leased> = (0..5).map(|i| leased(&format!("t{i}"), 8, None)).collect();
        let ids = groups(&lease, 2);
        let t = |s: &str| Some(s.to_string());
        assert_eq!(ids, [t("t0.1"), t("t0.1"), t("t2.1"), t("t2.1"), None], "the fifth has no partner left");
        assert_eq!(groups(&lease, 8), vec![t("t0.1"); 5]);
        assert_eq!(groups(&lease, 1), vec![None; 5], "--fuse 1 is every trial alone");
        assert_eq!(groups(&lease, 0), vec![None; 5]);
    }

    #[test]
    fn only_trials_of_one_shape_and_resume_epoch_share_a_group() {
        let lease = vec![
            leased("a", 8, None),
            leased("wide", 16, None),
            leased("b", 8, None),
            leased("resumed", 8, Some(2)),
            leased("focus", 0, None),
            leased("focus2", 0, None),
            leased("resumed2", 8, Some(2)),
        ];
        let ids = groups(&lease, 4);
        let t = |s: &str| Some(s.to_string());
        assert_eq!(ids, [t("a.1"), None, t("a.1"), t("resumed.1"), t("focus.1"), t("focus.1"), t("resumed.1")]);
    }

    #[test]
    fn a_config_that_does_not_read_trains_alone() {
        let mut lease = vec![leased("a", 8, None), leased("b", 8, None)];
        lease[1].config_toml = "not toml".into();
        assert_eq!(groups(&lease, 4), [None, None]);
    }
}
