//! Simulated hosts for the demo and for load tests: plausible, varied and deterministic for a seed.
//!
//! Each host has a role (`web-01`, `db-03`, `cache-07`…) that decides its size, its processes and what it is busy
//! with. CPU follows a slow day curve plus a few-minute wave (so a demo moves), with per-core random walks, bursts
//! that last a few seconds, and some hosts that run hot. Load averages follow CPU the way the kernel's do
//! (exponential averages over 1, 5 and 15 minutes), network and disk rates follow activity, and memory, TCP
//! states and the top processes drift. No clock or OS randomness is read: the same seed and the same timestamps
//! give the same samples.

use std::collections::BTreeMap;
use std::f64::consts::TAU;

use super::proc::TCP_STATES;
use super::sample::{
    round1, round2, Cpu, Disk, Mem, Net, NetRate, Process, Sample, Tcp, TOP_PROCESSES,
};

const GIB: u64 = 1 << 30;
const DAY_MS: f64 = 86_400_000.0;

/// SplitMix64: tiny, fast, and good enough for charts.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [low, high).
    pub fn range(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }

    /// Roughly normal, mean 0, standard deviation 1 (sum of uniforms).
    pub fn normal(&mut self) -> f64 {
        (self.unit() + self.unit() + self.unit() + self.unit() - 2.0) * 1.732
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next_u64() % items.len() as u64) as usize]
    }

    pub fn chance(&mut self, probability: f64) -> bool {
        self.unit() < probability
    }
}

/// What a host does, which shapes all of its numbers.
struct Role {
    name: &'static str,
    /// Usual CPU, fraction of the machine.
    cpu: f64,
    cores: &'static [usize],
    mem_gib: &'static [u64],
    /// Usual memory in use, fraction of the total.
    mem_used: f64,
    /// Network bytes/s at full activity (rx, tx).
    net: (f64, f64),
    /// Disk bytes/s at full activity (read, write).
    disk: (f64, f64),
    /// Established connections at full activity.
    connections: f64,
    listening: u32,
    /// The role's main processes, busiest first.
    processes: &'static [&'static str],
}

const ROLES: [Role; 8] = [
    Role {
        name: "web",
        cpu: 0.35,
        cores: &[2, 4, 8],
        mem_gib: &[4, 8, 16],
        mem_used: 0.45,
        net: (4e6, 25e6),
        disk: (0.2e6, 1e6),
        connections: 900.0,
        listening: 4,
        processes: &["nginx", "node", "php-fpm"],
    },
    Role {
        name: "db",
        cpu: 0.45,
        cores: &[8, 16, 32],
        mem_gib: &[32, 64, 128],
        mem_used: 0.75,
        net: (8e6, 12e6),
        disk: (40e6, 25e6),
        connections: 300.0,
        listening: 3,
        processes: &["postgres", "pgbouncer", "wal-g"],
    },
    Role {
        name: "cache",
        cpu: 0.25,
        cores: &[4, 8],
        mem_gib: &[16, 32, 64],
        mem_used: 0.65,
        net: (30e6, 45e6),
        disk: (0.1e6, 2e6),
        connections: 1500.0,
        listening: 3,
        processes: &["redis-server", "memcached", "redis-sentinel"],
    },
    Role {
        name: "api",
        cpu: 0.4,
        cores: &[4, 8, 16],
        mem_gib: &[8, 16, 32],
        mem_used: 0.55,
        net: (10e6, 8e6),
        disk: (0.5e6, 2e6),
        connections: 600.0,
        listening: 5,
        processes: &["java", "envoy", "fluent-bit"],
    },
    Role {
        name: "worker",
        cpu: 0.6,
        cores: &[8, 16, 32],
        mem_gib: &[16, 32, 64],
        mem_used: 0.5,
        net: (3e6, 1e6),
        disk: (8e6, 12e6),
        connections: 40.0,
        listening: 2,
        processes: &["python3", "ffmpeg", "celery"],
    },
    Role {
        name: "queue",
        cpu: 0.3,
        cores: &[4, 8, 16],
        mem_gib: &[16, 32],
        mem_used: 0.6,
        net: (20e6, 20e6),
        disk: (5e6, 30e6),
        connections: 400.0,
        listening: 4,
        processes: &["java", "beam.smp", "zookeeper"],
    },
    Role {
        name: "search",
        cpu: 0.35,
        cores: &[8, 16],
        mem_gib: &[32, 64],
        mem_used: 0.7,
        net: (6e6, 9e6),
        disk: (20e6, 6e6),
        connections: 200.0,
        listening: 2,
        processes: &["java", "logstash", "kibana"],
    },
    Role {
        name: "edge",
        cpu: 0.2,
        cores: &[2, 4],
        mem_gib: &[2, 4, 8],
        mem_used: 0.35,
        net: (40e6, 40e6),
        disk: (0.05e6, 0.3e6),
        connections: 2500.0,
        listening: 6,
        processes: &["haproxy", "keepalived", "envoy"],
    },
];

/// Processes every host has, idling.
const SYSTEM_PROCESSES: [&str; 4] = ["systemd", "sshd", "node_exporter", "journald"];

/// A simulated host and its drifting state.
pub struct SimHost {
    name: String,
    role: &'static Role,
    rng: Rng,
    /// Runs far above its role's usual CPU.
    hot: bool,
    /// Where in the day and in its wave this host is, so hosts do not move in lockstep.
    phase: f64,
    /// Period of the few-minute wave, ms.
    wave_ms: f64,
    /// Each core's offset from the host's level, random-walking.
    cores: Vec<f64>,
    /// Seconds of burst left, and its height.
    burst: (f64, f64),
    mem_total: u64,
    mem_used: f64,
    swap_total: u64,
    /// Network interfaces besides `lo`, with their share of traffic.
    ifaces: Vec<(String, f64)>,
    load: [f64; 3],
    /// Established connections, random-walking toward activity.
    connections: f64,
    /// (pid, name, usual share of the host's busy time, resident bytes).
    processes: Vec<(u32, &'static str, f64, u64)>,
    last_t: Option<u64>,
}

impl SimHost {
    /// The `index`th simulated host: its name depends only on `index` (`web-01`, `db-01`, … `web-02`, …), so keys
    /// stay the same across restarts; everything else depends on `seed` too.
    pub fn new(index: usize, seed: u64) -> Self {
        let role = &ROLES[index % ROLES.len()];
        let name = format!("{}-{:02}", role.name, index / ROLES.len() + 1);
        let mut rng = Rng::new(seed ^ (index as u64).wrapping_mul(0xA076_1D64_78BD_642F));
        let cores = *rng.pick(role.cores);
        let mem_total = rng.pick(role.mem_gib) * GIB;
        let swap_total = if rng.chance(0.4) {
            rng.pick(&[2u64, 4, 8]) * GIB
        } else {
            0
        };
        let mut ifaces = vec![("eth0".to_string(), 1.0)];
        if rng.chance(0.3) {
            let share = rng.range(0.1, 0.4);
            ifaces[0].1 = 1.0 - share;
            ifaces.push(("eth1".to_string(), share));
        }
        let mut pid = 1 + (rng.next_u64() % 300) as u32;
        let mut processes = Vec::new();
        let mut share = 0.7;
        for name in role.processes {
            pid += 1 + (rng.next_u64() % 2000) as u32;
            let rss = (mem_total as f64 * role.mem_used * share * rng.range(0.2, 0.6)) as u64;
            processes.push((pid, *name, share, rss));
            share *= 0.35;
        }
        for name in SYSTEM_PROCESSES {
            pid += 1 + (rng.next_u64() % 500) as u32;
            let rss = rng.range(4e6, 60e6) as u64;
            processes.push((pid, name, rng.range(0.001, 0.01), rss));
        }
        let hot = rng.chance(0.15);
        SimHost {
            name,
            role,
            hot,
            phase: rng.unit(),
            wave_ms: rng.range(180_000.0, 900_000.0),
            cores: (0..cores).map(|_| rng.range(-0.15, 0.15)).collect(),
            burst: (0.0, 0.0),
            mem_total,
            mem_used: (role.mem_used + rng.range(-0.1, 0.1)).clamp(0.1, 0.95),
            swap_total,
            ifaces,
            load: [0.0; 3],
            connections: role.connections * rng.range(0.3, 1.0),
            processes,
            last_t: None,
            rng,
        }
    }

    #[cfg(test)]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host's state at `t` (Unix ms), moved on from the previous sample.
    pub fn sample(&mut self, t: u64) -> Sample {
        let seconds = self.last_t.map_or(1.0, |last| {
            (t.saturating_sub(last) as f64 / 1000.0).clamp(0.001, 3600.0)
        });
        let first = self.last_t.is_none();
        self.last_t = Some(t);
        let rng = &mut self.rng;

        // How busy the host is, 0 to 1: its role, the time of day, a wave of a few minutes, and bursts.
        let day = (TAU * (t as f64 / DAY_MS + self.phase)).sin();
        let wave = (TAU * (t as f64 / self.wave_ms + self.phase)).sin();
        let mut level = self.role.cpu * (1.0 + 0.35 * day + 0.25 * wave);
        if self.hot {
            level = level.max(0.6) + 0.25;
        }
        if self.burst.0 > 0.0 {
            self.burst.0 -= seconds;
            level += self.burst.1;
        } else if rng.chance((0.015 * seconds).min(1.0)) {
            self.burst = (rng.range(3.0, 30.0), rng.range(0.2, 0.5));
        }
        let level = level.clamp(0.02, 0.98);

        let step = seconds.sqrt().min(5.0);
        let cores: Vec<f64> = self
            .cores
            .iter_mut()
            .map(|offset| {
                // Mean-reverting random walk: cores differ but stay near the host's level.
                *offset = (*offset * 0.9 + 0.04 * step * rng.normal()).clamp(-0.4, 0.4);
                let busy = level + *offset + 0.03 * rng.normal();
                round1(100.0 * busy.clamp(0.0, 1.0))
            })
            .collect();
        let total = cores.iter().sum::<f64>() / cores.len() as f64;

        // Load: the kernel's exponential averages of runnable tasks, here cores × busy plus a queue when hot.
        let runnable = cores.len() as f64 * total / 100.0 * (1.0 + 0.5 * (total / 100.0).powi(4));
        for (load, minutes) in self.load.iter_mut().zip([1.0, 5.0, 15.0]) {
            *load = if first {
                runnable
            } else {
                let keep = (-seconds / (60.0 * minutes)).exp();
                *load * keep + runnable * (1.0 - keep)
            };
        }

        self.mem_used =
            (self.mem_used + 0.004 * step * rng.normal() + 0.002 * (level - 0.5)).clamp(0.05, 0.97);
        let used = (self.mem_total as f64 * self.mem_used) as u64;
        let available = self.mem_total - used;
        let cached = (available as f64 * rng.range(0.5, 0.7)) as u64;
        let swap_used = if self.mem_used > 0.85 {
            (self.swap_total as f64 * (self.mem_used - 0.85) * 5.0) as u64
        } else {
            (self.swap_total as f64 * 0.02) as u64
        };

        let activity = level * rng.range(0.8, 1.2);
        let rx = self.role.net.0 * activity;
        let tx = self.role.net.1 * activity;
        let mut ifaces: BTreeMap<String, NetRate> = self
            .ifaces
            .iter()
            .map(|(name, share)| {
                let rate = NetRate {
                    rx: (rx * share) as u64,
                    tx: (tx * share) as u64,
                };
                (name.clone(), rate)
            })
            .collect();
        let net = Net {
            rx: ifaces.values().map(|r| r.rx).sum(),
            tx: ifaces.values().map(|r| r.tx).sum(),
            ifaces: BTreeMap::new(),
        };
        let lo = (rng.range(5e3, 80e3) * activity) as u64;
        ifaces.insert("lo".to_string(), NetRate { rx: lo, tx: lo });

        let disk_burst = if rng.chance(0.05) {
            rng.range(2.0, 6.0)
        } else {
            1.0
        };
        let disk = Disk {
            read: (self.role.disk.0 * activity * rng.range(0.5, 1.5) * disk_burst) as u64,
            write: (self.role.disk.1 * activity * rng.range(0.5, 1.5) * disk_burst) as u64,
        };

        let target = self.role.connections * level;
        self.connections += (target - self.connections) * 0.2 + target.sqrt() * rng.normal();
        self.connections = self.connections.max(0.0);
        let established = self.connections.round() as u32;
        let mut tcp = [0u32; TCP_STATES.len()];
        let mut set = |state: &str, count: u32| {
            if let Some(i) = TCP_STATES.iter().position(|s| *s == state) {
                tcp[i] = count;
            }
        };
        set("ESTABLISHED", established);
        set("LISTEN", self.role.listening + 2);
        set(
            "TIME_WAIT",
            (established as f64 * rng.range(0.1, 0.5)) as u32,
        );
        set("CLOSE_WAIT", (rng.unit() * 4.0) as u32);
        set(
            "FIN_WAIT2",
            (established as f64 * rng.range(0.0, 0.03)) as u32,
        );
        set(
            "SYN_RECV",
            u32::from(rng.chance(0.1)) * (1 + (rng.unit() * 5.0) as u32),
        );

        let busy_cores = total / 100.0 * cores.len() as f64;
        let mut procs: Vec<Process> = self
            .processes
            .iter()
            .map(|&(pid, name, share, rss)| Process {
                pid,
                name: name.to_string(),
                cpu: round1((100.0 * busy_cores * share * rng.range(0.7, 1.3)).max(0.0)),
                mem: (rss as f64 * (0.9 + 0.2 * self.mem_used)) as u64,
            })
            .collect();
        procs.sort_by(|a, b| b.cpu.total_cmp(&a.cpu).then(b.mem.cmp(&a.mem)));
        procs.truncate(TOP_PROCESSES);

        Sample {
            id: format!("{}:{t}", self.name),
            t,
            host: self.name.clone(),
            cpu: Cpu {
                total: round1(total),
                cores,
            },
            mem: Mem {
                total: self.mem_total,
                used,
                available,
                cached,
                swap_total: self.swap_total,
                swap_used: swap_used.min(self.swap_total),
            },
            load: self.load.map(round2),
            net: Net { ifaces, ..net },
            disk,
            tcp: Tcp(tcp),
            procs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;

    fn run(index: usize, seed: u64, samples: usize) -> Vec<Sample> {
        let mut host = SimHost::new(index, seed);
        (0..samples)
            .map(|i| host.sample(T0 + 1000 * i as u64))
            .collect()
    }

    #[test]
    fn deterministic_for_a_seed() {
        assert_eq!(run(3, 7, 50), run(3, 7, 50));
        assert_ne!(run(3, 7, 50), run(3, 8, 50));
    }

    #[test]
    fn names_by_role_and_number() {
        let names: Vec<String> = (0..17)
            .map(|i| SimHost::new(i, 1).name().to_string())
            .collect();
        assert_eq!(&names[..3], ["web-01", "db-01", "cache-01"]);
        assert_eq!(names[8], "web-02");
        assert_eq!(names[16], "web-03");
        let unique: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
    }

    #[test]
    fn values_stay_plausible() {
        for index in 0..40 {
            for s in run(index, 42, 300) {
                assert!((2..=32).contains(&s.cpu.cores.len()), "{}", s.host);
                assert!((0.0..=100.0).contains(&s.cpu.total));
                assert!(s.cpu.cores.iter().all(|c| (0.0..=100.0).contains(c)));
                assert!(s.mem.used + s.mem.available == s.mem.total);
                assert!(s.mem.cached <= s.mem.available);
                assert!(s.mem.swap_used <= s.mem.swap_total);
                assert!(s
                    .load
                    .iter()
                    .all(|l| *l >= 0.0 && *l <= 2.0 * s.cpu.cores.len() as f64));
                let ifaces_rx: u64 = s
                    .net
                    .ifaces
                    .iter()
                    .filter(|(n, _)| *n != "lo")
                    .map(|(_, r)| r.rx)
                    .sum();
                assert_eq!(s.net.rx, ifaces_rx, "totals leave out lo");
                assert!(s.net.rx < 1_000_000_000 && s.disk.write < 1_000_000_000);
                assert!(s.tcp.get("LISTEN") > 0);
                assert_eq!(s.procs.len(), TOP_PROCESSES);
                assert!(s.procs.windows(2).all(|w| w[0].cpu >= w[1].cpu));
                assert_eq!(s.id, format!("{}:{}", s.host, s.t));
            }
        }
    }

    #[test]
    fn hosts_differ_and_move() {
        let hosts: Vec<Vec<Sample>> = (0..24).map(|i| run(i, 9, 120)).collect();
        let cores: std::collections::BTreeSet<usize> =
            hosts.iter().map(|h| h[0].cpu.cores.len()).collect();
        assert!(cores.len() >= 3, "core counts vary: {cores:?}");
        let means: Vec<f64> = hosts
            .iter()
            .map(|h| h.iter().map(|s| s.cpu.total).sum::<f64>() / h.len() as f64)
            .collect();
        let (low, high) = means
            .iter()
            .fold((f64::MAX, 0.0f64), |(lo, hi), m| (lo.min(*m), hi.max(*m)));
        assert!(high - low > 30.0, "some hosts hot, some idle: {means:?}");
        assert!(hosts
            .iter()
            .all(|h| h.windows(2).any(|w| w[0].cpu != w[1].cpu)));
    }
}
