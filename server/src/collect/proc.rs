//! Pure parsers of the Linux `/proc` files the collector reads, and the deltas that turn two readings into rates
//! and percentages.
//!
//! Every parser takes the file's text as `&str`, so the tests feed it literal excerpts of real files, and returns
//! a [`ProcError`] naming the file, the line and what was expected instead of panicking on anything malformed.
//! Counters that go backwards between two readings (a 32-bit wrap, a reset, an interface or disk re-created)
//! count as zero for that interval: a gap in a chart is better than a spike of 2^64 bytes per second.

use std::collections::BTreeMap;

/// What was wrong with a `/proc` file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file} line {line}: expected {expected}")]
pub struct ProcError {
    pub file: &'static str,
    /// 1-based; 0 for the file as a whole.
    pub line: usize,
    pub expected: &'static str,
}

fn error(file: &'static str, line: usize, expected: &'static str) -> ProcError {
    ProcError {
        file,
        line,
        expected,
    }
}

/// Parses the next whitespace-separated field as a number.
fn number<'a, T: std::str::FromStr>(
    fields: &mut impl Iterator<Item = &'a str>,
    file: &'static str,
    line: usize,
    expected: &'static str,
) -> Result<T, ProcError> {
    fields
        .next()
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| error(file, line, expected))
}

/// `b - a` for a monotonic counter, 0 if it went backwards.
fn delta(a: u64, b: u64) -> u64 {
    b.saturating_sub(a)
}

/// A per-second rate of a counter read `seconds` apart.
pub fn rate(before: u64, after: u64, seconds: f64) -> u64 {
    if seconds <= 0.0 {
        return 0;
    }
    (delta(before, after) as f64 / seconds).round() as u64
}

// ---------------------------------------------------------------------------------------------------------------
// /proc/stat

/// One `cpu` line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    /// Time not idle: user, nice, system, irq, softirq, steal (guest time is already inside user).
    pub busy: u64,
    /// idle + iowait.
    pub idle: u64,
}

/// `/proc/stat`'s aggregate `cpu` line and one line per core, in core order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CpuStat {
    pub total: CpuTimes,
    pub cores: Vec<CpuTimes>,
}

pub fn parse_stat(text: &str) -> Result<CpuStat, ProcError> {
    const FILE: &str = "/proc/stat";
    let mut total = None;
    let mut cores = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut fields = line.split_ascii_whitespace();
        let Some(name) = fields.next().filter(|n| n.starts_with("cpu")) else {
            continue;
        };
        let mut ticks = [0u64; 8];
        // Kernels before 2.6.11 have fewer columns: the first four are always there.
        for (n, tick) in ticks.iter_mut().enumerate() {
            match fields.next() {
                Some(f) => *tick = f.parse().map_err(|_| error(FILE, i + 1, "clock ticks"))?,
                None if n >= 4 => break,
                None => return Err(error(FILE, i + 1, "at least 4 columns of clock ticks")),
            }
        }
        let [user, nice, system, idle, iowait, irq, softirq, steal] = ticks;
        let times = CpuTimes {
            busy: user + nice + system + irq + softirq + steal,
            idle: idle + iowait,
        };
        if name == "cpu" {
            total = Some(times);
        } else {
            cores.push(times);
        }
    }
    let total = total.ok_or_else(|| error(FILE, 0, "a `cpu` line"))?;
    Ok(CpuStat { total, cores })
}

/// Busy percentage between two readings of the same CPU; 0 if no time passed or the counters reset.
pub fn cpu_percent(before: CpuTimes, after: CpuTimes) -> f64 {
    let busy = delta(before.busy, after.busy);
    let all = busy + delta(before.idle, after.idle);
    if all == 0 {
        0.0
    } else {
        100.0 * busy as f64 / all as f64
    }
}

// ---------------------------------------------------------------------------------------------------------------
// /proc/meminfo

/// Memory in bytes. `used` is `total - available`, what the kernel considers unreclaimable; `cached` is the page
/// cache plus buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemInfo {
    pub total: u64,
    pub used: u64,
    pub available: u64,
    pub cached: u64,
    pub swap_total: u64,
    pub swap_used: u64,
}

pub fn parse_meminfo(text: &str) -> Result<MemInfo, ProcError> {
    const FILE: &str = "/proc/meminfo";
    let mut fields: BTreeMap<&str, u64> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let Some((name, value)) = line.split_once(':') else {
            return Err(error(FILE, i + 1, "`Name: value kB`"));
        };
        let mut words = value.split_ascii_whitespace();
        let amount: u64 = number(&mut words, FILE, i + 1, "a number")?;
        let bytes = match words.next() {
            Some("kB") => amount.saturating_mul(1024),
            None => amount,
            Some(_) => return Err(error(FILE, i + 1, "kB or no unit")),
        };
        fields.insert(name, bytes);
    }
    let get = |name| fields.get(name).copied();
    let total = get("MemTotal").ok_or_else(|| error(FILE, 0, "MemTotal"))?;
    // MemAvailable appeared in Linux 3.14; before it, free + buffers + cache is the usual estimate.
    let cached = get("Cached").unwrap_or(0) + get("Buffers").unwrap_or(0);
    let available = get("MemAvailable")
        .unwrap_or_else(|| get("MemFree").unwrap_or(0) + cached)
        .min(total);
    let swap_total = get("SwapTotal").unwrap_or(0);
    Ok(MemInfo {
        total,
        used: total - available,
        available,
        cached,
        swap_total,
        swap_used: swap_total.saturating_sub(get("SwapFree").unwrap_or(0)),
    })
}

// ---------------------------------------------------------------------------------------------------------------
// /proc/loadavg

pub fn parse_loadavg(text: &str) -> Result<[f64; 3], ProcError> {
    const FILE: &str = "/proc/loadavg";
    let mut fields = text.split_ascii_whitespace();
    let mut load = [0.0; 3];
    for value in &mut load {
        *value = number(&mut fields, FILE, 1, "three load averages")?;
    }
    Ok(load)
}

// ---------------------------------------------------------------------------------------------------------------
// /proc/net/dev

/// Bytes received and sent by one interface since boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetCounters {
    pub rx: u64,
    pub tx: u64,
}

/// Every interface's byte counters, by name.
pub fn parse_net_dev(text: &str) -> Result<BTreeMap<String, NetCounters>, ProcError> {
    const FILE: &str = "/proc/net/dev";
    let mut ifaces = BTreeMap::new();
    // Two header lines, then `name: rx_bytes packets errs drop fifo frame compressed multicast tx_bytes …`.
    for (i, line) in text.lines().enumerate().skip(2) {
        let Some((name, counters)) = line.split_once(':') else {
            return Err(error(FILE, i + 1, "`interface: counters`"));
        };
        let mut fields = counters.split_ascii_whitespace();
        let rx = number(&mut fields, FILE, i + 1, "received bytes")?;
        let mut fields = fields.skip(7);
        let tx = number(&mut fields, FILE, i + 1, "16 counters")?;
        ifaces.insert(name.trim().to_string(), NetCounters { rx, tx });
    }
    Ok(ifaces)
}

/// Interfaces left out of the host's network totals (they still appear in the per-interface rates): loopback
/// traffic never leaves the machine, and here it is mostly the relay and Redis talking to each other.
pub fn is_loopback(iface: &str) -> bool {
    iface == "lo"
}

// ---------------------------------------------------------------------------------------------------------------
// /proc/diskstats

/// Sector size of /proc/diskstats, whatever the device's real sector size.
const SECTOR_BYTES: u64 = 512;

/// Bytes read and written since boot, summed over whole disks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskCounters {
    pub read: u64,
    pub written: u64,
}

/// Sums whole physical disks only. Partitions are left out, since their I/O is already in their disk's line: a
/// device is a partition when another device of the file is its name plus digits (`sda1` of `sda`, `nvme0n1p2` of
/// `nvme0n1`, `mmcblk0p1` of `mmcblk0`). Virtual block devices stacked on the disks or on memory (`loop`, `ram`,
/// `zram`, `dm-`, `md`, `nbd`, `sr`) are left out too, so each byte is counted once.
pub fn parse_diskstats(text: &str) -> Result<DiskCounters, ProcError> {
    const FILE: &str = "/proc/diskstats";
    let mut devices = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut fields = line.split_ascii_whitespace().skip(2);
        let Some(name) = fields.next() else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(error(FILE, i + 1, "major, minor and a device name"));
        };
        // reads completed, reads merged, sectors read, ms reading, writes completed, writes merged, sectors written
        let mut fields = fields.skip(2);
        let read: u64 = number(&mut fields, FILE, i + 1, "sectors read")?;
        let mut fields = fields.skip(3);
        let written: u64 = number(&mut fields, FILE, i + 1, "sectors written")?;
        devices.push((name, read, written));
    }
    let names: Vec<&str> = devices.iter().map(|d| d.0).collect();
    let mut total = DiskCounters::default();
    for (name, read, written) in &devices {
        if is_virtual_disk(name) || is_partition(name, &names) {
            continue;
        }
        total.read += read * SECTOR_BYTES;
        total.written += written * SECTOR_BYTES;
    }
    Ok(total)
}

fn is_virtual_disk(name: &str) -> bool {
    ["loop", "ram", "zram", "dm-", "md", "nbd", "sr"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

fn is_partition(name: &str, devices: &[&str]) -> bool {
    devices.iter().any(|disk| {
        name.strip_prefix(disk).is_some_and(|rest| {
            let digits = rest.strip_prefix('p').unwrap_or(rest);
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        })
    })
}

// ---------------------------------------------------------------------------------------------------------------
// /proc/net/tcp, /proc/net/tcp6

/// TCP states as the kernel numbers them in the `st` column (`include/net/tcp_states.h`), from 1. The kernel's
/// 12th, `NEW_SYN_RECV` (a pending connection request), is counted as `SYN_RECV`, as `ss` and `netstat` show it.
pub const TCP_STATES: [&str; 11] = [
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
];

const NEW_SYN_RECV: u8 = 12;
const SYN_RECV: u8 = 3;

/// Sockets per state, indexed like [`TCP_STATES`].
pub type TcpCounts = [u32; 11];

/// Adds the sockets of one `/proc/net/tcp` or `/proc/net/tcp6` file to `counts`.
pub fn count_tcp(text: &str, counts: &mut TcpCounts) -> Result<(), ProcError> {
    const FILE: &str = "/proc/net/tcp";
    // A header line, then `sl local_address rem_address st …`.
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let state = line
            .split_ascii_whitespace()
            .nth(3)
            .and_then(|st| u8::from_str_radix(st, 16).ok())
            .filter(|st| (1..=NEW_SYN_RECV).contains(st))
            .ok_or_else(|| error(FILE, i + 1, "a state 01 to 0C in the 4th column"))?;
        let state = if state == NEW_SYN_RECV {
            SYN_RECV
        } else {
            state
        };
        counts[usize::from(state - 1)] += 1;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// /proc/[pid]/stat

/// What the collector needs of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessStat {
    pub pid: u32,
    /// The command name (`comm`), at most 15 bytes, as in `/proc/[pid]/comm`.
    pub name: String,
    /// User + system time, in clock ticks.
    pub ticks: u64,
    /// Resident set size, in pages.
    pub rss_pages: u64,
}

pub fn parse_pid_stat(text: &str) -> Result<ProcessStat, ProcError> {
    const FILE: &str = "/proc/[pid]/stat";
    // The name is inside parentheses and may itself contain spaces and parentheses: it ends at the last `)`.
    let (open, close) = text
        .find('(')
        .zip(text.rfind(')'))
        .filter(|(open, close)| open < close)
        .ok_or_else(|| error(FILE, 1, "`pid (comm) state …`"))?;
    let pid = text[..open]
        .trim()
        .parse()
        .map_err(|_| error(FILE, 1, "a pid"))?;
    let name = text[open + 1..close].to_string();
    // After the name: state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime(14)
    // stime(15) cutime cstime priority nice num_threads itrealvalue starttime vsize rss(24).
    let mut fields = text[close + 1..].split_ascii_whitespace().skip(11);
    let utime: u64 = number(&mut fields, FILE, 1, "utime in field 14")?;
    let stime: u64 = number(&mut fields, FILE, 1, "stime in field 15")?;
    let mut fields = fields.skip(8);
    let rss_pages: i64 = number(&mut fields, FILE, 1, "rss in field 24")?;
    Ok(ProcessStat {
        pid,
        name,
        ticks: utime + stime,
        rss_pages: rss_pages.max(0) as u64,
    })
}

/// A process's share of one CPU over `seconds`, like top's default (Irix) mode: 200 is two cores' worth.
pub fn process_cpu_percent(before: u64, after: u64, seconds: f64, ticks_per_second: u64) -> f64 {
    if seconds <= 0.0 || ticks_per_second == 0 {
        return 0.0;
    }
    100.0 * delta(before, after) as f64 / ticks_per_second as f64 / seconds
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "\
cpu  148309 138 18970 41863 731 0 145 59 0 0
cpu0 73540 40 8940 22425 124 0 27 28 0 0
cpu1 74768 97 10029 19437 606 0 118 30 0 0
intr 919486 0 0 0 0 0 0 0 0 0
ctxt 1332023
btime 1795702356
processes 42780
procs_running 1
procs_blocked 0
";

    #[test]
    fn stat_gives_busy_and_idle_per_cpu() {
        let stat = parse_stat(STAT).unwrap();
        assert_eq!(
            stat.total,
            CpuTimes {
                busy: 148309 + 138 + 18970 + 145 + 59,
                idle: 41863 + 731
            }
        );
        assert_eq!(stat.cores.len(), 2);
        assert_eq!(stat.cores[1].idle, 19437 + 606);
    }

    #[test]
    fn stat_with_four_columns_and_errors() {
        let old = parse_stat("cpu 10 0 10 80\ncpu0 10 0 10 80\n").unwrap();
        assert_eq!(old.total, CpuTimes { busy: 20, idle: 80 });
        assert_eq!(
            parse_stat("cpu 10 0 10\n").unwrap_err(),
            error("/proc/stat", 1, "at least 4 columns of clock ticks")
        );
        assert_eq!(parse_stat("cpu 1 x 1 1\n").unwrap_err().line, 1);
        assert_eq!(
            parse_stat("intr 1 2\n").unwrap_err().expected,
            "a `cpu` line"
        );
        assert!(parse_stat("").is_err());
    }

    #[test]
    fn cpu_percent_from_deltas_and_resets() {
        let a = CpuTimes {
            busy: 100,
            idle: 900,
        };
        let b = CpuTimes {
            busy: 125,
            idle: 975,
        };
        assert_eq!(cpu_percent(a, b), 25.0);
        assert_eq!(cpu_percent(a, a), 0.0);
        // Counters that went backwards (a reset) never give a negative or huge percentage.
        assert_eq!(cpu_percent(b, a), 0.0);
        let reset = CpuTimes {
            busy: 150,
            idle: 10,
        };
        assert!((0.0..=100.0).contains(&cpu_percent(b, reset)));
    }

    const MEMINFO: &str = "\
MemTotal:       24684092 kB
MemFree:        17333512 kB
MemAvailable:   24229380 kB
Buffers:           18400 kB
Cached:          6881556 kB
SwapCached:            0 kB
SwapTotal:       2097148 kB
SwapFree:        1048572 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
";

    #[test]
    fn meminfo_in_bytes() {
        let mem = parse_meminfo(MEMINFO).unwrap();
        assert_eq!(mem.total, 24684092 * 1024);
        assert_eq!(mem.available, 24229380 * 1024);
        assert_eq!(mem.used, (24684092 - 24229380) * 1024);
        assert_eq!(mem.cached, (6881556 + 18400) * 1024);
        assert_eq!(mem.swap_total, 2097148 * 1024);
        assert_eq!(mem.swap_used, (2097148 - 1048572) * 1024);
    }

    #[test]
    fn meminfo_without_memavailable_and_errors() {
        let mem = parse_meminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nCached: 200 kB\n").unwrap();
        assert_eq!(mem.available, 300 * 1024);
        assert_eq!(mem.swap_used, 0);
        assert_eq!(
            parse_meminfo("MemFree: 1 kB\n").unwrap_err().expected,
            "MemTotal"
        );
        assert_eq!(parse_meminfo("MemTotal 1 kB\n").unwrap_err().line, 1);
        assert_eq!(
            parse_meminfo("MemTotal: 1 kB\nCached: lots\n")
                .unwrap_err()
                .line,
            2
        );
    }

    #[test]
    fn loadavg() {
        assert_eq!(
            parse_loadavg("1.81 2.62 1.75 1/86 10276\n").unwrap(),
            [1.81, 2.62, 1.75]
        );
        assert!(parse_loadavg("1.81 2.62\n").is_err());
        assert!(parse_loadavg("").is_err());
    }

    const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 127384710   72690    0    0    0     0          0         0 127384710   72690    0    0    0     0       0          0
  eth0: 363160042   13895    0    0    0     0          0         0   718947    7579    0    0    0     0       0          0
wlp2s0:1234 5 0 0 0 0 0 0 4321 6 0 0 0 0 0 0
";

    #[test]
    fn net_dev_per_interface() {
        let ifaces = parse_net_dev(NET_DEV).unwrap();
        assert_eq!(ifaces.len(), 3);
        assert_eq!(
            ifaces["eth0"],
            NetCounters {
                rx: 363160042,
                tx: 718947
            }
        );
        // No space between the name's colon and the first counter, as with long names.
        assert_eq!(ifaces["wlp2s0"], NetCounters { rx: 1234, tx: 4321 });
        assert!(is_loopback("lo") && !is_loopback("eth0"));
    }

    #[test]
    fn net_dev_errors() {
        let header = NET_DEV.lines().take(2).collect::<Vec<_>>().join("\n");
        assert!(parse_net_dev(&header).unwrap().is_empty());
        let short = format!("{header}\n  eth0: 1 2 3\n");
        assert_eq!(
            parse_net_dev(&short).unwrap_err(),
            error("/proc/net/dev", 3, "16 counters")
        );
        assert!(parse_net_dev(&format!("{header}\ngarbage\n")).is_err());
    }

    const DISKSTATS: &str = "\
   7       0 loop0 1 0 8 0 0 0 0 0 0 4 0 0 0 0 0 0 0
 254       0 vda 82471 7209 5357282 61077 34126 72386 21052656 127743 0 16540 192451 24113 56 6210784 3353 4103 277
 254       1 vda1 82000 7209 5300000 61000 34000 72386 21000000 127700 0 16500 192400 0 0 0 0
 259       0 nvme0n1 100 0 2000 10 50 0 1000 5 0 15 15 0 0 0 0
 259       1 nvme0n1p1 100 0 2000 10 50 0 1000 5 0 15 15 0 0 0 0
 253       0 dm-0 500 0 4000 10 50 0 1000 5 0 15 15 0 0 0 0
 252       0 zram0 9 0 90 0 9 0 90 0 0 0 0 0 0 0 0
   8       0 sda 10 0 80 1 20 0 160 2 0 3 3
   8       1 sda1 10 0 80 1 20 0 160 2 0 3 3
";

    #[test]
    fn diskstats_counts_whole_disks_once() {
        let disks = parse_diskstats(DISKSTATS).unwrap();
        assert_eq!(disks.read, (5357282 + 2000 + 80) * 512);
        assert_eq!(disks.written, (21052656 + 1000 + 160) * 512);
    }

    #[test]
    fn diskstats_errors() {
        assert_eq!(
            parse_diskstats("   8       0 sda 10 0\n").unwrap_err(),
            error("/proc/diskstats", 1, "sectors read")
        );
        assert!(parse_diskstats("   8\n").is_err());
        assert_eq!(parse_diskstats("").unwrap(), DiskCounters::default());
    }

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 37 1 0000000025c4e7ff 100 0 0 10 0
   1: 0100007F:18EB 0100007F:A2C4 01 00000000:00000000 00:00000000 00000000     0        0 4711 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:A2C4 0100007F:18EB 06 00000000:00000000 03:00000547 00000000     0        0 0 3 0000000000000000
";

    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 52345 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:D5A6 01 00000000:00000000 02:0000A3C1 00000000  1000        0 52400 2 0000000000000000 20 4 0 10 -1
";

    #[test]
    fn tcp_and_tcp6_states() {
        let mut counts = TcpCounts::default();
        count_tcp(TCP, &mut counts).unwrap();
        count_tcp(TCP6, &mut counts).unwrap();
        let by_name = |name| counts[TCP_STATES.iter().position(|s| *s == name).unwrap()];
        assert_eq!(by_name("LISTEN"), 2);
        assert_eq!(by_name("ESTABLISHED"), 2);
        assert_eq!(by_name("TIME_WAIT"), 1);
        assert_eq!(counts.iter().sum::<u32>(), 5);
        // A file with only its header: no sockets.
        let mut empty = TcpCounts::default();
        count_tcp(TCP.lines().next().unwrap(), &mut empty).unwrap();
        assert_eq!(empty, TcpCounts::default());
    }

    #[test]
    fn tcp_errors() {
        let mut counts = TcpCounts::default();
        let header = TCP.lines().next().unwrap();
        for bad in [
            "   0: 00000000:07E8 00000000:0000 0D 0",
            "   0: 1 2",
            "   0: 1 2 ZZ",
        ] {
            let err = count_tcp(&format!("{header}\n{bad}\n"), &mut counts).unwrap_err();
            assert_eq!(err.line, 2, "{bad}");
        }
        // A pending request (NEW_SYN_RECV, 0C) is a SYN_RECV.
        let mut counts = TcpCounts::default();
        count_tcp(
            &format!("{header}\n   0: 0100007F:1F90 0100007F:D5A6 0C 0\n"),
            &mut counts,
        )
        .unwrap();
        assert_eq!(counts[2], 1);
    }

    const PID_STAT: &str = "1234 (redis-server) S 1 1234 1234 0 -1 4194560 1710 0 0 0 250 130 0 0 20 0 5 0 3042 75739136 2860 18446744073709551615 1 1 0 0 0 0 0 4097 17642 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

    #[test]
    fn pid_stat() {
        assert_eq!(
            parse_pid_stat(PID_STAT).unwrap(),
            ProcessStat {
                pid: 1234,
                name: "redis-server".into(),
                ticks: 380,
                rss_pages: 2860
            }
        );
        // Names may hold spaces and parentheses.
        let odd = PID_STAT.replace("(redis-server)", "(tmux: (server))");
        assert_eq!(parse_pid_stat(&odd).unwrap().name, "tmux: (server)");
    }

    #[test]
    fn pid_stat_errors() {
        assert!(parse_pid_stat("").is_err());
        assert!(parse_pid_stat("12 (x").is_err());
        assert!(parse_pid_stat("x (a) S 1").is_err());
        assert!(parse_pid_stat("12 (a) S 1 2 3").is_err());
    }

    #[test]
    fn rates_and_process_cpu() {
        assert_eq!(rate(1000, 3000, 2.0), 1000);
        assert_eq!(rate(3000, 1000, 2.0), 0, "a counter reset is not a spike");
        assert_eq!(rate(u64::MAX - 1, 5, 1.0), 0);
        assert_eq!(rate(1, 2, 0.0), 0);
        assert_eq!(process_cpu_percent(100, 150, 0.5, 100), 100.0);
        assert_eq!(process_cpu_percent(150, 100, 0.5, 100), 0.0);
    }
}
