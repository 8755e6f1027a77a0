//! This machine, read from `/proc`: each [`LocalHost::sample`] reads the files again and turns the difference
//! from the previous reading into rates and percentages.
//!
//! A file that cannot be read or parsed leaves its part of the sample at zero and is logged once, not every
//! interval: `/proc/net/tcp6` is missing without IPv6, `/proc/diskstats` in some containers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::proc::{self, CpuStat, DiskCounters, NetCounters, ProcError, TcpCounts};
use super::sample::{
    round1, round2, Cpu, Disk, Mem, Net, NetRate, Process, Sample, Tcp, TOP_PROCESSES,
};

/// The counters of one reading, kept until the next.
#[derive(Default)]
struct Reading {
    at: Option<Instant>,
    cpu: Option<CpuStat>,
    net: BTreeMap<String, NetCounters>,
    disk: Option<DiskCounters>,
    /// Ticks per process id, with the name, so a recycled pid is not mistaken for the old process.
    processes: HashMap<u32, (String, u64)>,
}

pub struct LocalHost {
    name: String,
    root: PathBuf,
    previous: Reading,
    ticks_per_second: u64,
    page_size: u64,
    /// Files already reported as unreadable.
    warned: HashSet<String>,
}

impl LocalHost {
    /// Reads `/proc` (or `root`, for tests) and takes the first reading, the baseline of the first sample's rates.
    pub fn new(name: String, root: impl Into<PathBuf>) -> Self {
        // SAFETY: sysconf only reads system constants.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        let mut host = LocalHost {
            name,
            root: root.into(),
            previous: Reading::default(),
            ticks_per_second: u64::try_from(ticks).unwrap_or(100).max(1),
            page_size: u64::try_from(page).unwrap_or(4096).max(1),
            warned: HashSet::new(),
        };
        host.sample(0);
        host
    }

    /// The machine's hostname, from `/proc/sys/kernel/hostname`.
    pub fn hostname() -> Option<String> {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|name| name.trim().to_string())
            .filter(|name| !name.is_empty())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A sample at `t` (Unix ms) of what happened since the previous call.
    pub fn sample(&mut self, t: u64) -> Sample {
        let now = Instant::now();
        let seconds = self
            .previous
            .at
            .map_or(0.0, |at| now.duration_since(at).as_secs_f64());
        let cpu = self.read("stat", proc::parse_stat);
        let mem = self
            .read("meminfo", proc::parse_meminfo)
            .unwrap_or_default();
        let load = self
            .read("loadavg", proc::parse_loadavg)
            .unwrap_or_default();
        let net = self
            .read("net/dev", proc::parse_net_dev)
            .unwrap_or_default();
        let disk = self.read("diskstats", proc::parse_diskstats);
        let mut tcp = TcpCounts::default();
        for file in ["net/tcp", "net/tcp6"] {
            self.read(file, |text| proc::count_tcp(text, &mut tcp));
        }
        let processes = self.read_processes();

        let sample = Sample {
            id: format!("{}:{t}", self.name),
            t,
            host: self.name.clone(),
            cpu: cpu_sample(self.previous.cpu.as_ref(), cpu.as_ref()),
            mem: Mem {
                total: mem.total,
                used: mem.used,
                available: mem.available,
                cached: mem.cached,
                swap_total: mem.swap_total,
                swap_used: mem.swap_used,
            },
            load: load.map(round2),
            net: net_sample(&self.previous.net, &net, seconds),
            disk: match (self.previous.disk, disk) {
                (Some(a), Some(b)) => Disk {
                    read: proc::rate(a.read, b.read, seconds),
                    write: proc::rate(a.written, b.written, seconds),
                },
                _ => Disk { read: 0, write: 0 },
            },
            tcp: Tcp(tcp),
            procs: self.top_processes(&processes, seconds),
        };
        self.previous = Reading {
            at: Some(now),
            cpu,
            net,
            disk,
            processes: processes
                .into_iter()
                .map(|p| (p.pid, (p.name, p.ticks)))
                .collect(),
        };
        sample
    }

    /// Reads and parses one file under the proc root; `None` (logged the first time) if it cannot.
    fn read<T>(
        &mut self,
        file: &str,
        parse: impl FnOnce(&str) -> Result<T, ProcError>,
    ) -> Option<T> {
        let path = self.root.join(file);
        let result = match std::fs::read_to_string(&path) {
            Ok(text) => parse(&text).map_err(|e| e.to_string()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        };
        match result {
            Ok(value) => Some(value),
            Err(message) => {
                if self.warned.insert(file.to_string()) {
                    tracing::warn!("collector: {message}; left out of the samples");
                }
                None
            }
        }
    }

    /// Every process's stat; processes that end while being read are skipped.
    fn read_processes(&self) -> Vec<proc::ProcessStat> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_str().is_some_and(is_pid))
            .filter_map(|entry| read_pid_stat(&entry.path()))
            .collect()
    }

    fn top_processes(&self, processes: &[proc::ProcessStat], seconds: f64) -> Vec<Process> {
        let mut busy: Vec<Process> = processes
            .iter()
            .map(|p| {
                let before = match self.previous.processes.get(&p.pid) {
                    Some((name, ticks)) if *name == p.name => *ticks,
                    // New since the previous reading: its ticks so far are a lifetime, not this interval.
                    _ => p.ticks,
                };
                Process {
                    pid: p.pid,
                    name: p.name.clone(),
                    cpu: proc::process_cpu_percent(before, p.ticks, seconds, self.ticks_per_second),
                    mem: p.rss_pages * self.page_size,
                }
            })
            .collect();
        // Busiest first; among equals (idle machines), the largest in memory.
        busy.sort_by(|a, b| b.cpu.total_cmp(&a.cpu).then(b.mem.cmp(&a.mem)));
        busy.truncate(TOP_PROCESSES);
        for process in &mut busy {
            process.cpu = round1(process.cpu);
        }
        busy
    }
}

fn is_pid(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
}

fn read_pid_stat(dir: &Path) -> Option<proc::ProcessStat> {
    let text = std::fs::read_to_string(dir.join("stat")).ok()?;
    proc::parse_pid_stat(&text).ok()
}

fn cpu_sample(before: Option<&CpuStat>, after: Option<&CpuStat>) -> Cpu {
    let (Some(before), Some(after)) = (before, after) else {
        return Cpu {
            total: 0.0,
            cores: after.map_or(Vec::new(), |a| vec![0.0; a.cores.len()]),
        };
    };
    Cpu {
        total: round1(proc::cpu_percent(before.total, after.total)),
        cores: after
            .cores
            .iter()
            .enumerate()
            .map(|(i, core)| {
                let before = before.cores.get(i).copied().unwrap_or(*core);
                round1(proc::cpu_percent(before, *core))
            })
            .collect(),
    }
}

fn net_sample(
    before: &BTreeMap<String, NetCounters>,
    after: &BTreeMap<String, NetCounters>,
    seconds: f64,
) -> Net {
    let mut net = Net {
        rx: 0,
        tx: 0,
        ifaces: BTreeMap::new(),
    };
    for (name, counters) in after {
        // An interface that just appeared has no rate yet.
        let previous = before.get(name).copied().unwrap_or(*counters);
        let rate = NetRate {
            rx: proc::rate(previous.rx, counters.rx, seconds),
            tx: proc::rate(previous.tx, counters.tx, seconds),
        };
        if !proc::is_loopback(name) {
            net.rx += rate.rx;
            net.tx += rate.tx;
        }
        net.ifaces.insert(name.clone(), rate);
    }
    net
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_this_machine() {
        let mut host = LocalHost::new("here".into(), "/proc");
        std::thread::sleep(std::time::Duration::from_millis(20));
        let sample = host.sample(42);
        assert_eq!(sample.id, "here:42");
        assert!(sample.mem.total > 0 && sample.mem.used <= sample.mem.total);
        assert!(!sample.cpu.cores.is_empty());
        assert!((0.0..=100.0).contains(&sample.cpu.total));
        assert!(sample.procs.len() <= TOP_PROCESSES && !sample.procs.is_empty());
    }

    #[test]
    fn a_missing_proc_gives_zeros_not_a_panic() {
        let dir = std::env::temp_dir().join(format!("replicast-noproc-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("net")).unwrap();
        std::fs::write(dir.join("stat"), "cpu 1 2\n").unwrap();
        std::fs::write(dir.join("net/tcp"), "header\n 0: a b 01 x\n").unwrap();
        let mut host = LocalHost::new("nowhere".into(), &dir);
        let sample = host.sample(1);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(sample.cpu.total, 0.0);
        assert_eq!(sample.mem.total, 0);
        assert_eq!(sample.tcp.get("ESTABLISHED"), 1);
        assert!(sample.procs.is_empty());
        assert!(host.warned.contains("net/tcp6") && host.warned.contains("stat"));
    }
}
