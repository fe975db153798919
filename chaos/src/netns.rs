//! A network namespace for the worker that gets partitioned: a veth pair joins it to the
//! host, the coordinator listens on the host end's address, and a partition is a pair of
//! blackhole routes (the namespace's route to the coordinator and the host's route back),
//! so every packet between that one worker and the coordinator is dropped while the host's
//! own traffic, the other workers' included, flows on. Healing deletes the routes; the
//! worker's TCP connections survive if they did not time out meanwhile. (Blackhole routes
//! rather than iptables, which this machine lacks, or a link taken down, which also cuts the
//! host from the address its coordinator listens on.) Needs root.

use std::process::Command;

use anyhow::{bail, Context};

/// A namespace joined to the host by a veth pair; removed when dropped.
pub struct Namespace {
    pub name: String,
    host_if: String,
    /// The host end's address: the coordinator listens here.
    pub host_ip: String,
    ns_ip: String,
    cut: bool,
}

impl Namespace {
    /// A fresh namespace named after this process, on a /24 in 10.213.0.0/16.
    pub fn create() -> anyhow::Result<Self> {
        let pid = std::process::id();
        let subnet = 10 + pid % 240;
        let ns = Self {
            name: format!("allsweep-chaos-{pid}"),
            host_if: format!("asc{pid}h"),
            host_ip: format!("10.213.{subnet}.1"),
            ns_ip: format!("10.213.{subnet}.2"),
            cut: false,
        };
        let ns_if = format!("asc{pid}n");
        ns.remove();
        let host_cidr = format!("{}/24", ns.host_ip);
        let ns_cidr = format!("{}/24", ns.ns_ip);
        let steps: [Vec<&str>; 8] = [
            vec!["netns", "add", &ns.name],
            vec!["link", "add", &ns.host_if, "type", "veth", "peer", "name", &ns_if],
            vec!["link", "set", &ns_if, "netns", &ns.name],
            vec!["addr", "add", &host_cidr, "dev", &ns.host_if],
            vec!["link", "set", &ns.host_if, "up"],
            vec!["netns", "exec", &ns.name, "ip", "addr", "add", &ns_cidr, "dev", &ns_if],
            vec!["netns", "exec", &ns.name, "ip", "link", "set", &ns_if, "up"],
            vec!["netns", "exec", &ns.name, "ip", "link", "set", "lo", "up"],
        ];
        for step in steps {
            ip(&step).context("making the partition's network namespace (needs root and iproute2)")?;
        }
        Ok(ns)
    }

    /// Drops every packet between the namespace and the host.
    pub fn cut(&mut self) -> anyhow::Result<()> {
        ip(&["netns", "exec", &self.name, "ip", "route", "add", "blackhole", &format!("{}/32", self.host_ip)])?;
        self.cut = true;
        ip(&["route", "add", "blackhole", &format!("{}/32", self.ns_ip)])
    }

    /// Lets packets through again.
    pub fn heal(&mut self) -> anyhow::Result<()> {
        let inside =
            ip(&["netns", "exec", &self.name, "ip", "route", "del", "blackhole", &format!("{}/32", self.host_ip)]);
        let outside = ip(&["route", "del", "blackhole", &format!("{}/32", self.ns_ip)]);
        self.cut = false;
        inside.and(outside)
    }

    pub fn is_cut(&self) -> bool {
        self.cut
    }

    /// Removes what [`Namespace::create`] made (and what an earlier run of the same pid left).
    fn remove(&self) {
        let _ = ip(&["route", "del", "blackhole", &format!("{}/32", self.ns_ip)]);
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        self.remove();
    }
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("ip").args(args).output().context("cannot run ip (iproute2)")?;
    if !output.status.success() {
        bail!("ip {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}
